#!/usr/bin/env bash
# Prints the resident set (VmRSS, KiB) of a herald binary right after start:
# started with its three listeners on free loopback ports, measured once it
# has printed its listening lines and settled for 200 ms, then stopped.
#
#   bash benches/embedded/start-rss.sh target/x86_64-unknown-linux-musl/embedded/herald [FLAGS...]
set -euo pipefail
bin=${1:?usage: start-rss.sh HERALD_BINARY [FLAGS...]}
shift
log=$(mktemp)
"$bin" --ws 127.0.0.1:0 --text 127.0.0.1:0 --http 127.0.0.1:0 "$@" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  grep -q "listening http" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.05
done
sleep 0.2
awk '/^VmRSS:/ { print $2 }' /proc/$pid/status
