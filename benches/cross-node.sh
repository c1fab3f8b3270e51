#!/usr/bin/env bash
# Cross-node against same-node pushes through Redis, in one run: pipelined
# text-port pushes to uids bound on node A, written into node B (cross) or
# into node A itself (same), both nodes on one redis-server (loopback) with
# their default limits (history off). Each run starts a fresh pair; modes
# and binaries take turns (alternating), ROUNDS times; then the medians.
# Per run: pushes delivered per second (wall clock) and per CPU-second of
# the two nodes together (the figure that does not depend on how much CPU
# the load generator took), redis-server's CPU, and the replies: ok, fail,
# other (`error ...`: a push refused rather than answered).
#
#   BINS="/tmp/herald-before target/release/herald" ROUNDS=3 benches/cross-node.sh
#   CONNS=2000 LINES=20000 ROUNDS=1 benches/cross-node.sh      # a smoke run
#
# Issue 20's check: every reply ok, and the cross-node median at least half
# the same-node one. Needs redis-server and a release herald-bench (cargo
# build --release -p herald-bench). Take figures on a quiet machine.
set -uo pipefail
cd "$(dirname "$0")/.."

BINS=${BINS:-target/release/herald}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-10000}
LINES=${LINES:-300000}
MODES=${MODES:-cross same}
BENCH=${BENCH:-target/release/herald-bench}
BASE_PORT=${BASE_PORT:-23000}
# Extra flags for both nodes (none: the defaults, --redis-max-pending 1 MiB
# and --max-queued 1 MiB, are what the check is about).
NODE_FLAGS=${NODE_FLAGS:-}

command -v redis-server >/dev/null || { echo "cross-node: redis-server is not installed" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "cross-node: build $BENCH first (cargo build --release -p herald-bench)" >&2; exit 1; }

cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# A number from the first JSON line of `kind` in $out.
field() { grep "\"kind\":\"$1\"" <<<"$out" | head -1 | grep -o "\"$2\":[0-9.]*" | head -1 | cut -d: -f2; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

rport=$BASE_PORT
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
redis_pid=$!
pa= pb=
results=$(mktemp)
trap 'kill $redis_pid $pa $pb 2>/dev/null; rm -f "$results"' EXIT
wait_port "$rport" || { echo "cross-node: redis-server did not start" >&2; exit 1; }

echo "reproduce: BINS=\"$BINS\" ROUNDS=$ROUNDS CONNS=$CONNS LINES=$LINES MODES=\"$MODES\" NODE_FLAGS=\"$NODE_FLAGS\" benches/cross-node.sh"
printf '%-28s %-5s %5s %10s %7s %7s %7s %6s %6s %6s %12s\n' \
  binary mode round pushes/s ok fail other A-cpu B-cpu redis per-node-cpu-s
for round in $(seq "$ROUNDS"); do
  for bin in $BINS; do
    for mode in $MODES; do
      rate=
      for attempt in 1 2 3; do
        a=$((BASE_PORT + 10)) at=$((BASE_PORT + 11)) b=$((BASE_PORT + 20))
        # shellcheck disable=SC2086 # NODE_FLAGS is a list of flags
        "$bin" --ws 127.0.0.1:$a --text 127.0.0.1:$at --http off --redis "redis://127.0.0.1:$rport" $NODE_FLAGS >/tmp/cross-a.log 2>&1 &
        pa=$!
        # shellcheck disable=SC2086
        "$bin" --ws off --text 127.0.0.1:$b --http off --redis "redis://127.0.0.1:$rport" $NODE_FLAGS >/tmp/cross-b.log 2>&1 &
        pb=$!
        wait_port $a && wait_port $at && wait_port $b
        sleep 0.5
        if [ "$mode" = cross ]; then text=$b; else text=$at; fi
        a0=$(cpu $pa) b0=$(cpu $pb) r0=$(cpu $redis_pid)
        out=$(timeout 600 "$BENCH" push --ws 127.0.0.1:$a --text 127.0.0.1:$text --conns "$CONNS" --lines "$LINES" --runs 1 --label "$mode" 2>&1)
        a1=$(cpu $pa) b1=$(cpu $pb) r1=$(cpu $redis_pid)
        kill -TERM $pa $pb 2>/dev/null
        wait $pa $pb 2>/dev/null
        rate=$(field result value)
        [ -n "$rate" ] && break
        # The bench pushes once to each client right after it binds, which can
        # race the node's SUBSCRIBE on Redis: then it says so, and we retry.
        echo "cross-node: $bin $mode round $round attempt $attempt: $(tail -1 <<<"$out")"
        sleep 1
      done
      [ -n "$rate" ] || continue
      ok=$(field run ok_replies) fail=$(field run fail_replies) other=$(field run other_replies)
      # The nodes' CPU over the whole bench (A also took the handshakes: the
      # same for every binary and mode, and small beside the pushes).
      da=$(echo "$a1 - $a0" | bc) db=$(echo "$b1 - $b0" | bc) dr=$(echo "$r1 - $r0" | bc)
      per=$(echo "scale=0; $LINES / ($da + $db)" | bc)
      printf '%-28s %-5s %5s %10.0f %7s %7s %7s %6s %6s %6s %12s\n' \
        "$bin" "$mode" "$round" "$rate" "${ok:-?}" "${fail:-?}" "${other:-?}" "$da" "$db" "$dr" "$per"
      echo "$bin $mode $rate $per ${ok:-0} ${fail:-0} ${other:-0}" >>"$results"
      sleep 1
    done
  done
done

echo
printf '%-28s %-5s %5s %10s %12s %10s\n' binary mode runs pushes/s per-node-cpu-s all-ok
for bin in $BINS; do
  for mode in $MODES; do
    rows=$(awk -v b="$bin" -v m="$mode" '$1 == b && $2 == m' "$results")
    [ -n "$rows" ] || continue
    n=$(wc -l <<<"$rows")
    r=$(awk '{print $3}' <<<"$rows" | median)
    p=$(awk '{print $4}' <<<"$rows" | median)
    allok=$(awk -v lines="$LINES" '$5 != lines {bad = 1} END {print bad ? "no" : "yes"}' <<<"$rows")
    printf '%-28s %-5s %5s %10.0f %12.0f %10s\n' "$bin" "$mode" "$n" "$r" "$p" "$allok"
  done
  cross=$(awk -v b="$bin" '$1 == b && $2 == "cross" {print $3}' "$results" | median)
  same=$(awk -v b="$bin" '$1 == b && $2 == "same" {print $3}' "$results" | median)
  if [ -n "$cross" ] && [ -n "$same" ]; then
    echo "$bin: cross-node / same-node median rate = $(echo "scale=2; $cross / $same" | bc) (issue 20: at least 0.5)"
  fi
done
