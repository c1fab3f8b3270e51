#!/bin/sh
# herald under a minimal init (busybox init, a plain rc script, a container
# entrypoint): runs it in the foreground and restarts it if it dies, with a
# pause so a crash loop cannot spin. SIGTERM / SIGINT to this script stop
# herald gracefully and end the loop. A usage error (exit 2) ends it too.
#
#   deploy/herald.sh /usr/local/bin/herald --ws 0.0.0.0:1234 --read-buffer 16384 --send-pool 16
#
# busybox /etc/inittab:   ::respawn:/usr/local/bin/herald --ws 0.0.0.0:1234
# (respawn alone is enough there; this script is for inits without it.)
set -u
bin=${1:?usage: herald.sh HERALD_BINARY [FLAGS...]}
shift
stopping=0
child=
stop() {
  stopping=1
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
}
trap stop TERM INT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
while [ $stopping = 0 ]; do
  "$bin" "$@" &
  child=$!
  wait "$child"
  status=$?
  # wait returns early when a trapped signal arrives: wait for herald itself.
  while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
  child=
  [ $stopping = 1 ] && exit 0
  # Exit 2 is a usage error (a bad flag or value): restarting cannot fix it.
  if [ "$status" = 2 ]; then
    echo "herald.sh: herald refused its command line (exit 2); not restarting" >&2
    exit 2
  fi
  echo "herald.sh: herald exited with status $status; restarting in 2 s" >&2
  sleep 2
done
