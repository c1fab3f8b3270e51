#!/usr/bin/env bash
# Delivery under connection churn (issue 20), after AnyCable's
# nodejs-websocket-bench: CLIENTS clients, each dropped on average every
# DROP_EVERY s (half a clean close, half a reset) and reconnecting after
# 0-2 s to a random node, for SECS s, while a backend pushes RATE/s to random
# uids and broadcasts once a second (herald-bench churn). Configurations:
#   one      one node, history in memory
#   two      two nodes on one redis-server, history in Redis
#   restart  herald start -d --workers 2 on Redis, `herald restart` halfway
# each with seed clients (resume off) and herald.v1 clients (resume on),
# every server started fresh. Then the cost of history, same runs
# alternating history on and off: pipelined pushes per server CPU-second
# (herald-bench push) and server memory per kept message (herald-bench
# history-memory). Prints one table per part; everything goes to OUT.
#
#   benches/churn.sh                                     # ~12 min (benches/README.md)
#   SECS=10 CLIENTS=1000 COST_ROUNDS=1 COST_LINES=50000 MEM_MESSAGES=20000 benches/churn.sh
#                                                        # a smoke run, ~2 min
#   CONFIGS=one RESUME=on benches/churn.sh               # one row
#
# Needs a release build (cargo build --release -p herald -p herald-bench)
# and, for `two` and `restart`, redis-server. Take figures on a quiet
# machine: nothing else compiling, testing or benchmarking.
set -uo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-10000}
SECS=${SECS:-60}
RATE=${RATE:-2000}
BROADCASTS=${BROADCASTS:-1}        # per second
DROP_EVERY=${DROP_EVERY:-15}       # mean seconds between two drops of a client
RECONNECT_MAX_MS=${RECONNECT_MAX_MS:-2000}
SETTLE=${SETTLE:-5}                # seconds of reconnects only, after the window
HISTORY=${HISTORY:-100}            # --history of every server in the churn runs
RESTART_DRAIN=${RESTART_DRAIN:-2000}
CONFIGS=${CONFIGS:-"one two restart"}
RESUME=${RESUME:-"off on"}
SEED=${SEED:-1}
COST=${COST:-1}                    # 0: skip the cost of history
COST_ROUNDS=${COST_ROUNDS:-3}
COST_CONNS=${COST_CONNS:-10000}
COST_LINES=${COST_LINES:-300000}
MEM_CONNS=${MEM_CONNS:-100}
MEM_MESSAGES=${MEM_MESSAGES:-100000}
MEM_SIZE=${MEM_SIZE:-100}
# Room for every message of the memory run, so that nothing is evicted.
MEM_HISTORY=${MEM_HISTORY:-$((MEM_MESSAGES / MEM_CONNS + 1))}
BASE_PORT=${BASE_PORT:-25000}      # below the ephemeral range (32768-60999 here)
RUN_LIMIT=${RUN_LIMIT:-$((SECS + SETTLE + 180))}
HERALD=${HERALD:-target/release/herald}
BENCH=${BENCH:-target/release/herald-bench}
OUT=${OUT:-target/bench-churn/$(date +%Y%m%d-%H%M%S)}

die() { echo "churn: $*" >&2; exit 1; }
[ -x "$HERALD" ] && [ -x "$BENCH" ] || die "build first: cargo build --release -p herald -p herald-bench"
for c in $CONFIGS; do case $c in one | two | restart) ;; *) die "unknown configuration $c (one, two, restart)" ;; esac; done
for r in $RESUME; do case $r in on | off) ;; *) die "RESUME: on and/or off, not $r" ;; esac; done
if [[ " $CONFIGS " == *" two "* || " $CONFIGS " == *" restart "* ]]; then
  command -v redis-server >/dev/null || die "redis-server is not installed (needed by two and restart)"
fi
help=$("$HERALD" --help 2>&1)
if [[ " $CONFIGS " == *" restart "* ]] && ! grep -q 'herald restart' <<<"$help"; then
  echo "churn: this herald has no 'restart' command: skipping the restart configuration" >&2
  CONFIGS=${CONFIGS//restart/}
fi
drain=()
grep -q -- '--restart-drain' <<<"$help" && drain=(--restart-drain "$RESTART_DRAIN")

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl LOG=$OUT/log.txt ROWS=$OUT/rows.md
: >"$RESULTS"; : >"$LOG"; : >"$ROWS"
say() { echo "$*" | tee -a "$LOG"; }

cpu_of() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
wait_port() { for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
port=$BASE_PORT
port_free() { [ -z "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]; }
# Ten free ports in a row from $port: P .. P+9.
next_ports() {
  local ok
  while :; do
    ok=1
    for k in $(seq 0 9); do port_free $((port + k)) || { ok=0; break; }; done
    [ $ok = 1 ] && break
    port=$((port + 10))
  done
  P=$port
  port=$((port + 10))
}

PIDS=() REDIS_PID= PIDFILE=
start_redis() { # port
  redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis-$1.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$1" || die "redis-server did not start (see $OUT/redis-$1.log)"
}
stop_all() {
  [ -n "$PIDFILE" ] && "$HERALD" stop --pid-file "$PIDFILE" >/dev/null 2>&1
  for p in "${PIDS[@]}" $REDIS_PID; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}" $REDIS_PID; do wait "$p" 2>/dev/null; done
  # A daemon is not our child: wait until its pid file's lock is gone.
  for _ in $(seq 100); do [ -n "$PIDFILE" ] && [ -e "$PIDFILE" ] || break; sleep 0.1; done
  PIDS=() REDIS_PID= PIDFILE=
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

# Starts herald in the background: start_herald NAME ARGS...; its pid in PIDS.
start_herald() {
  local name=$1
  shift
  "$HERALD" "$@" >"$OUT/herald-$name.log" 2>&1 &
  PIDS+=($!)
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) cores"
  echo "herald: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "churn: CLIENTS=$CLIENTS SECS=$SECS RATE=$RATE BROADCASTS=$BROADCASTS DROP_EVERY=$DROP_EVERY" \
    "RECONNECT_MAX_MS=$RECONNECT_MAX_MS SETTLE=$SETTLE HISTORY=$HISTORY SEED=$SEED"
} | tee "$OUT/machine.txt"

failures=()
# One churn run: churn_run CONFIG RESUME.
churn_run() {
  local config=$1 resume=$2 ws text pids api rport
  next_ports
  local h=(--history "$HISTORY")
  case $config in
    one)
      start_herald one --ws 127.0.0.1:$P --text 127.0.0.1:$((P + 1)) --http 127.0.0.1:$((P + 2)) "${h[@]}"
      wait_port $P && wait_port $((P + 1)) || return 1
      ws=127.0.0.1:$P text=127.0.0.1:$((P + 1)) pids=${PIDS[0]} api=127.0.0.1:$((P + 2))
      ;;
    two)
      rport=$((P + 9))
      start_redis $rport
      for n in 0 1; do
        local b=$((P + 3 * n))
        start_herald "two-$n" --ws 127.0.0.1:$b --text 127.0.0.1:$((b + 1)) --http 127.0.0.1:$((b + 2)) \
          --redis redis://127.0.0.1:$rport "${h[@]}"
      done
      wait_port $P && wait_port $((P + 4)) || return 1
      ws=127.0.0.1:$P,127.0.0.1:$((P + 3)) text=127.0.0.1:$((P + 1)),127.0.0.1:$((P + 4))
      pids=${PIDS[0]},${PIDS[1]} api=127.0.0.1:$((P + 2))
      ;;
    restart)
      rport=$((P + 9))
      start_redis $rport
      PIDFILE=$OUT/restart-$P.pid
      "$HERALD" start -d --workers 2 --pid-file "$PIDFILE" --log-file "$OUT/herald-restart-$P.log" \
        --ws 127.0.0.1:$P --text 127.0.0.1:$((P + 1)) --http 127.0.0.1:$((P + 2)) \
        --redis redis://127.0.0.1:$rport "${h[@]}" "${drain[@]}" >>"$LOG" 2>&1 || return 1
      wait_port $P && wait_port $((P + 1)) || return 1
      # Two backend connections on the one text port: SO_REUSEPORT spreads
      # them over the workers.
      ws=127.0.0.1:$P text=127.0.0.1:$((P + 1)),127.0.0.1:$((P + 1))
      pids=$(cat "$PIDFILE") api=
      ;;
  esac
  sleep 0.5
  local label="$config node" stats=()
  case $config in two) label="two nodes, Redis" ;; restart) label="restart, 2 workers, Redis" ;; esac
  [ -n "$api" ] && stats=(--stats "$api")
  local r0=0 r1=0
  [ -n "$REDIS_PID" ] && r0=$(cpu_of "$REDIS_PID")
  local out=$OUT/churn-$config-$resume.out
  local resume_flag=no
  [ "$resume" = on ] && resume_flag=yes
  timeout "$RUN_LIMIT" "$BENCH" churn --ws "$ws" --text "$text" --clients "$CLIENTS" --seconds "$SECS" \
    --rate "$RATE" --broadcasts "$BROADCASTS" --drop-every "$DROP_EVERY" \
    --reconnect-max-ms "$RECONNECT_MAX_MS" --resume $resume_flag --settle "$SETTLE" --seed "$SEED" \
    --pid "$pids" "${stats[@]}" --label "$label" >"$out" 2>&1 &
  local bench=$!
  if [ "$config" = restart ]; then
    # Halfway through the window: wait for the clients to be bound first.
    for _ in $(seq 1200); do grep -q 'clients bound in' "$out" && break; kill -0 $bench 2>/dev/null || break; sleep 0.1; done
    sleep $((SECS / 2))
    say "   herald restart --pid-file $PIDFILE ($(date +%T))"
    "$HERALD" restart --pid-file "$PIDFILE" >>"$LOG" 2>&1 || say "   herald restart failed"
  fi
  wait $bench
  local rc=$?
  [ -n "$REDIS_PID" ] && r1=$(cpu_of "$REDIS_PID")
  grep '^{' "$out" >>"$RESULTS"
  grep -v '^{' "$out" | grep -v '^row' | sed 's/^/   /' | tee -a "$LOG"
  [ -n "$REDIS_PID" ] && say "   redis-server CPU over the run: $(echo "$r1 - $r0" | bc) s"
  grep '^row-header: ' "$out" | sed 's/^row-header: //' >"$OUT/row-header.md"
  grep '^row: ' "$out" | sed 's/^row: //' >>"$ROWS"
  return $rc
}

started=$(date +%s)
for config in $CONFIGS; do
  for resume in $RESUME; do
    say "== churn: $config, resume $resume ($CLIENTS clients, $SECS s)"
    churn_run "$config" "$resume" || failures+=("churn $config resume $resume")
    stop_all
    sleep 1 # let the closed connections go before the next server starts
  done
done

# The cost of history: the same runs alternating history on and off.
cost_run() { # kind on|off
  next_ports
  local h=()
  [ "$2" = on ] && h=(--history "$HISTORY")
  [ "$2" = on ] && [ "$1" = memory ] && h=(--history "$MEM_HISTORY")
  start_herald "cost-$1-$2" --ws 127.0.0.1:$P --text 127.0.0.1:$((P + 1)) --http 127.0.0.1:$((P + 2)) \
    --max-queued 268435456 "${h[@]}"
  wait_port $P && wait_port $((P + 1)) || return 1
  local common=(--ws 127.0.0.1:$P --text 127.0.0.1:$((P + 1)) --pid "${PIDS[0]}" --label "history $2")
  local out=$OUT/cost-$1-$2.out
  case $1 in
    push) timeout "$RUN_LIMIT" "$BENCH" push "${common[@]}" --conns "$COST_CONNS" --lines "$COST_LINES" --runs 1 >"$out" 2>&1 ;;
    memory) timeout "$RUN_LIMIT" "$BENCH" history-memory "${common[@]}" --stats 127.0.0.1:$((P + 2)) \
      --conns "$MEM_CONNS" --messages "$MEM_MESSAGES" --size "$MEM_SIZE" >"$out" 2>&1 ;;
  esac
  local rc=$?
  grep '^{' "$out" | tee -a "$RESULTS" >>"$OUT/cost.jsonl"
  grep -v '^{' "$out" | sed 's/^/   /' | tee -a "$LOG"
  return $rc
}
if [ "$COST" = 1 ]; then
  : >"$OUT/cost.jsonl"
  for round in $(seq "$COST_ROUNDS"); do
    for h in on off; do
      say "== cost of history: push, history $h, round $round/$COST_ROUNDS"
      cost_run push $h || failures+=("cost push history $h round $round")
      stop_all
      sleep 1
    done
  done
  for h in on off; do
    say "== cost of history: memory, history $h"
    cost_run memory $h || failures+=("cost memory history $h")
    stop_all
    sleep 1
  done
fi

echo
echo "== results ($(($(date +%s) - started)) s in all); files in $OUT"
echo
cat "$OUT/machine.txt"
echo
{
  echo "Delivery under churn: $CLIENTS clients, $SECS s, $RATE pushes/s to random uids + $BROADCASTS broadcast(s)/s," \
    "a drop every $DROP_EVERY s per client on average (half clean, half reset), reconnect after 0-$RECONNECT_MAX_MS ms;" \
    "servers with --history $HISTORY"
  echo
  cat "$OUT/row-header.md" "$ROWS" 2>/dev/null
  if [ "$COST" = 1 ] && [ -s "$OUT/cost.jsonl" ]; then
    echo
    echo "The cost of history (--history $HISTORY for push, $MEM_HISTORY for history-memory, against none;" \
      "alternating, fresh servers):"
    echo
    "$BENCH" table "$OUT/cost.jsonl"
  fi
} | tee "$OUT/table.md"
if [ ${#failures[@]} -gt 0 ]; then
  echo
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
