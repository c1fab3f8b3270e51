#!/usr/bin/env bash
# Cross-node pushes through Redis: pipelined text-port pushes into node B for
# uids bound on node A, both nodes on one redis-server (loopback). Each run
# starts a fresh pair; the binaries take turns (alternating), ROUNDS times.
# Per run: pushes delivered per second (wall clock) and per CPU-second of
# the two nodes together (the figure that does not depend on how much CPU
# the load generator took), plus redis-server's CPU over the run.
#
#   BINS="/tmp/herald-before target/release/herald" ROUNDS=3 benches/cross-node.sh
#   CONNS=2000 LINES=20000 ROUNDS=1 benches/cross-node.sh      # a smoke run
#
# Needs redis-server and a release herald-bench (cargo build --release -p
# herald-bench). Take figures on a quiet machine.
set -uo pipefail
cd "$(dirname "$0")/.."

BINS=${BINS:-target/release/herald}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-10000}
LINES=${LINES:-100000}
BENCH=${BENCH:-target/release/herald-bench}
BASE_PORT=${BASE_PORT:-23000}
# A pipelined bulk job passes the default --redis-max-pending (refused past
# it, and replies awaiting Redis count in the backend's queue: issue 20), so
# the nodes get room for the whole run.
NODE_FLAGS=${NODE_FLAGS:---redis-max-pending 268435456 --max-queued 268435456}

command -v redis-server >/dev/null || { echo "cross-node: redis-server is not installed" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "cross-node: build $BENCH first (cargo build --release -p herald-bench)" >&2; exit 1; }

cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

rport=$BASE_PORT
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
redis_pid=$!
pa= pb=
trap 'kill $redis_pid $pa $pb 2>/dev/null' EXIT
wait_port "$rport" || { echo "cross-node: redis-server did not start" >&2; exit 1; }

echo "reproduce: BINS=\"$BINS\" ROUNDS=$ROUNDS CONNS=$CONNS LINES=$LINES benches/cross-node.sh"
printf '%-32s %6s %12s %8s %8s %8s %16s\n' binary round pushes/s A-cpu B-cpu redis per-node-cpu-s
for round in $(seq "$ROUNDS"); do
  for bin in $BINS; do
    for attempt in 1 2 3; do
      a=$((BASE_PORT + 10)) b=$((BASE_PORT + 20))
      "$bin" --ws 127.0.0.1:$a --text off --http off --redis "redis://127.0.0.1:$rport" $NODE_FLAGS >/tmp/cross-a.log 2>&1 &
      pa=$!
      "$bin" --ws off --text 127.0.0.1:$b --http off --redis "redis://127.0.0.1:$rport" $NODE_FLAGS >/tmp/cross-b.log 2>&1 &
      pb=$!
      wait_port $a && wait_port $b
      sleep 0.5
      a0=$(cpu $pa) b0=$(cpu $pb) r0=$(cpu $redis_pid)
      out=$(timeout 600 "$BENCH" push --ws 127.0.0.1:$a --text 127.0.0.1:$b --conns "$CONNS" --lines "$LINES" --runs 1 --label x 2>&1)
      a1=$(cpu $pa) b1=$(cpu $pb) r1=$(cpu $redis_pid)
      kill -TERM $pa $pb 2>/dev/null
      wait $pa $pb 2>/dev/null
      rate=$(grep -o '"value":[0-9.]*' <<<"$(grep '"kind":"result"' <<<"$out" | head -1)" | cut -d: -f2)
      [ -n "$rate" ] && break
      # The bench pushes once to each client right after it binds, which can
      # race the node's SUBSCRIBE on Redis: then it says so, and we retry.
      echo "cross-node: $bin round $round attempt $attempt: $(tail -1 <<<"$out")"
      sleep 1
    done
    [ -n "$rate" ] || continue
    # The nodes' CPU over the whole bench (A also took the handshakes: the
    # same for every binary, and small beside the pushes).
    da=$(echo "$a1 - $a0" | bc) db=$(echo "$b1 - $b0" | bc) dr=$(echo "$r1 - $r0" | bc)
    per=$(echo "scale=0; $LINES / ($da + $db)" | bc)
    printf '%-32s %6s %12.0f %8s %8s %8s %16s\n' "$bin" "$round" "$rate" "$da" "$db" "$dr" "$per"
    sleep 1
  done
done
