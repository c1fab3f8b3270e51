#!/usr/bin/env bash
# Compares herald with its peers under herald-bench: uWebSockets (the
# strongest, deliveries through its topics; build it with
# ../shared/peers/uws/build.sh, binary in $UWS; `uwsz` is its zlib build with
# permessage-deflate, binary in $UWSZ) and Node.js `ws`.
#
# For each mode, the servers take turns (herald, node, herald, node, ...),
# ROUNDS times each; every run gets a freshly started server on its own
# ports, killed afterwards. Prints a markdown table of medians at the end and
# keeps every line in target/bench-compare/<date>/.
#
#   benches/peers/run-compare.sh                      # the full comparison
#   SERVERS="herald uws node" UWS=~/herald-peers/uws/seed_server benches/peers/run-compare.sh
#   SERVERS="herald before" BEFORE=/tmp/old/herald benches/peers/run-compare.sh
#                                  # herald against an older herald binary
#   DEFLATE=1 JSON=1024 MODES="broadcast push" SERVERS="herald heraldplain uwsz" \
#     UWSZ=~/herald-peers/uws/seed_server_zlib benches/peers/run-compare.sh
#                                  # permessage-deflate, realistic JSON payloads:
#                                  # herald compressing, herald with --deflate off
#                                  # (its clients offer nothing), uWS compressing
#   CONNS=500 IDLE_COUNTS=500,1000 LINES=5000 LAT_CONNS=200 RATE=1000 \
#     LAT_SECONDS=2 TOTAL=2000 ROUNDS=1 benches/peers/run-compare.sh   # a smoke run
#   MODES="broadcast topic topicall membership" SERVERS=herald MESSAGES=300 \
#     benches/peers/run-compare.sh
#                                  # herald's topics: publish to a topic of CONNS
#                                  # vs broadcast (client `all:` and text-port
#                                  # {"all":true}), memory per membership
#   HERALD_BIN=/tmp/herald BENCH_BIN=/tmp/herald-bench ...  # fixed binaries, no build
#
# Take figures on a quiet machine: nothing else compiling or testing.
set -uo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"idle broadcast push latency handshakes"}
SERVERS=${SERVERS:-"herald node"}
IDLE_COUNTS=${IDLE_COUNTS:-5000,10000,19000}
CONNS=${CONNS:-10000}          # broadcast and push
MESSAGES=${MESSAGES:-100}      # broadcast
SIZE=${SIZE:-64}               # broadcast
JSON=${JSON:-}                 # broadcast and push: a JSON payload of about JSON bytes (replaces SIZE)
DEFLATE=${DEFLATE:-0}          # 1: broadcast and push clients offer permessage-deflate
HERALD_FLAGS=${HERALD_FLAGS:-} # appended to herald's command line (e.g. "--deflate off")
LINES=${LINES:-50000}          # push
IN_FLIGHT=${IN_FLIGHT:-}       # push: one write per line, at most IN_FLIGHT unanswered (default: one write)
LAT_CONNS=${LAT_CONNS:-1000}   # latency
RATE=${RATE:-5000}             # latency
LAT_SECONDS=${LAT_SECONDS:-5}  # latency
TOPICS=${TOPICS:-5}            # membership: topics each uid joins
MEMBER_COUNTS=${MEMBER_COUNTS:-2000,5000,10000} # membership: N, a fresh server each
PER_LINE=${PER_LINE:-1}        # membership: uids per join line
TOTAL=${TOTAL:-20000}          # handshakes
CONCURRENCY=${CONCURRENCY:-64} # handshakes
BASE_PORT=${BASE_PORT:-21000}  # below the ephemeral range (32768-60999 here)
PHASE_TIMEOUT=${PHASE_TIMEOUT:-120}   # herald-bench --timeout: any one phase
RUN_LIMIT=${RUN_LIMIT:-600}           # hard limit on one herald-bench run, seconds
JOBS=${JOBS:-2}
OUT=${OUT:-target/bench-compare/$(date +%Y%m%d-%H%M%S)}

die() { echo "run-compare: $*" >&2; exit 1; }

for m in $MODES; do
  case $m in idle | broadcast | push | latency | handshakes | topic | topicall | membership) ;; *) die "unknown mode $m" ;; esac
done
for s in $SERVERS; do
  case $s in
    herald | heraldplain | node) ;;
    uws) [ -x "${UWS:-}" ] || die "uws: set UWS to the seed_server binary (../shared/peers/uws/build.sh)" ;;
    uwsz) [ -x "${UWSZ:-}" ] || die "uwsz: set UWSZ to the seed_server_zlib binary (ZLIB=1 ../shared/peers/uws/build.sh)" ;;
    before) [ -x "${BEFORE:-}" ] || die "before: set BEFORE to a herald binary" ;;
    *) die "unknown server $s (herald, heraldplain, uws, uwsz, node or before)" ;;
  esac
done
case $DEFLATE in 0 | 1) ;; *) die "DEFLATE is 0 or 1" ;; esac
# The runs of a mode per server and round: one, or (membership) one per N.
variants() {
  case $1 in
    membership) tr , ' ' <<<"$MEMBER_COUNTS" ;;
    *) echo - ;;
  esac
}
# herald's own modes (topics): the peers have no topics, they are skipped.
herald_only() { case $1 in topic | topicall | membership) return 0 ;; *) return 1 ;; esac; }
speaks_topics() { case $1 in herald | heraldplain | before) return 0 ;; *) return 1 ;; esac; }
# The servers that run mode $1.
servers_of() {
  for s in $SERVERS; do
    if ! herald_only "$1" || speaks_topics "$s"; then echo "$s"; fi
  done
}
[ -z "$JSON" ] || [ "$JSON" -ge 1 ] 2>/dev/null || die "JSON is a size in bytes"

# HERALD_BIN and BENCH_BIN: binaries built beforehand (a fixed commit),
# measured as they are; else this tree's release build.
if [ -n "${HERALD_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
  [ -x "$HERALD_BIN" ] && [ -x "$BENCH_BIN" ] || die "HERALD_BIN and BENCH_BIN must be executables"
  HERALD=$HERALD_BIN
  BENCH=$BENCH_BIN
else
  [ -z "${HERALD_BIN:-}${BENCH_BIN:-}" ] || die "set both HERALD_BIN and BENCH_BIN, or neither"
  echo "== building herald and herald-bench (release)"
  cargo build --release -j "$JOBS" -p herald -p herald-bench || die "cargo build failed"
  HERALD=target/release/herald
  BENCH=target/release/herald-bench
fi

if [[ " $SERVERS " == *" node "* ]]; then
  echo "== installing the node peer (benches/peers/node-ws)"
  command -v node >/dev/null || die "node is not installed (apt-get install nodejs npm)"
  (cd benches/peers/node-ws && { npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent; }) ||
    die "npm could not install benches/peers/node-ws"
fi

# Both ends hold a descriptor per connection: take the hard limit (node
# inherits it; herald and herald-bench raise their own).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
LOG=$OUT/log.txt
: >"$RESULTS"
: >"$LOG"

# A rough estimate: connection setup ~3000/s, plus each mode's own time,
# plus ~2 s per server start and stop.
max_idle=${IDLE_COUNTS##*,}
est=0
for m in $MODES; do
  case $m in
    idle) t=$((max_idle / 3000 + 8)) ;;
    broadcast) t=$((CONNS / 3000 + 4)) ;;
    push) t=$((CONNS / 3000 + LINES / 20000 + 4)) ;;
    latency) t=$((LAT_CONNS / 3000 + LAT_SECONDS + 4)) ;;
    handshakes) t=$((TOTAL / 4000 + 2)) ;;
    topic | topicall) t=$((CONNS / 3000 + CONNS * MESSAGES / 2000000 + 4)) ;;
    membership) t=$(( ($(tr , + <<<"$MEMBER_COUNTS")) * (TOPICS + 1) / 3000 + 4 * $(variants membership | wc -w) )) ;;
  esac
  est=$((est + (t + 2) * ROUNDS * $(servers_of "$m" | wc -w)))
done
runs=0
for m in $MODES; do runs=$((runs + $(variants "$m" | wc -w) * ROUNDS * $(servers_of "$m" | wc -w))); done
echo "== $runs runs ($MODES) x ($SERVERS) x $ROUNDS rounds: about $((est / 60 + 1)) min;" \
  "each run is cut after $RUN_LIMIT s, so at most $((runs * (RUN_LIMIT + 12) / 60)) min"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) cores"
  if [ -n "${HERALD_BIN:-}" ]; then
    echo "herald: $HERALD_BIN (this tree: $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  else
    echo "herald: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  fi
  [ -n "$HERALD_FLAGS" ] && echo "herald flags: $HERALD_FLAGS"
  [ -n "${BEFORE:-}" ] && echo "before: $BEFORE"
  [[ " $SERVERS " == *" uwsz "* ]] && echo "uwsz: $UWSZ (COMPRESSION=shared)"
  [ "$DEFLATE" = 1 ] && echo "clients offer permessage-deflate (broadcast, push)"
  [ -n "$JSON" ] && echo "payload: JSON of about $JSON bytes (broadcast, push)"
  if command -v node >/dev/null; then
    echo "node: $(node --version), ws $(node -p "require('./benches/peers/node-ws/node_modules/ws/package.json').version" 2>/dev/null || echo '?')"
  fi
} | tee "$OUT/machine.txt"

port=$BASE_PORT
port_free() { [ -z "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]; }
next_ports() {
  while ! port_free "$port" || ! port_free $((port + 1)) || ! port_free $((port + 2)); do port=$((port + 3)); done
  WS_PORT=$port
  TEXT_PORT=$((port + 1))
  HTTP_PORT=$((port + 2))
  port=$((port + 3))
}

SERVER_PID=
start_server() {
  local name=$1 slog=$OUT/server-$1-$WS_PORT.log
  case $name in
    before) "$BEFORE" --ws 127.0.0.1:"$WS_PORT" --text 127.0.0.1:"$TEXT_PORT" --http 127.0.0.1:"$HTTP_PORT" --routing >"$slog" 2>&1 & ;;
    # shellcheck disable=SC2086 # HERALD_FLAGS is split into words on purpose
    herald) "$HERALD" --ws 127.0.0.1:"$WS_PORT" --text 127.0.0.1:"$TEXT_PORT" --http 127.0.0.1:"$HTTP_PORT" --routing $HERALD_FLAGS >"$slog" 2>&1 & ;;
    # shellcheck disable=SC2086
    heraldplain) "$HERALD" --ws 127.0.0.1:"$WS_PORT" --text 127.0.0.1:"$TEXT_PORT" --http 127.0.0.1:"$HTTP_PORT" --routing $HERALD_FLAGS --deflate off >"$slog" 2>&1 & ;;
    uws) WS_PORT=$WS_PORT TCP_PORT=$TEXT_PORT "$UWS" >"$slog" 2>&1 & ;;
    uwsz) COMPRESSION=shared WS_PORT=$WS_PORT TCP_PORT=$TEXT_PORT "$UWSZ" >"$slog" 2>&1 & ;;
    node) node benches/peers/node-ws/server.js "$WS_PORT" "$TEXT_PORT" 127.0.0.1 >"$slog" 2>&1 & ;;
  esac
  SERVER_PID=$!
  # Each server says when it is bound.
  for _ in $(seq 100); do
    if grep -q "listening ws" "$slog" && grep -q "listening text" "$slog"; then return 0; fi
    if grep -q "uws seed server: ws on" "$slog"; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "run-compare: $name did not start; its output:" >&2
  cat "$slog" >&2
  stop_server
  return 1
}
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  fi
}
trap 'stop_server' EXIT
trap 'stop_server; exit 130' INT TERM

bench_args() { # mode server variant
  local ws=127.0.0.1:$WS_PORT text=127.0.0.1:$TEXT_PORT
  local common=(--label "$2" --timeout "$PHASE_TIMEOUT")
  # herald's own counters: its writes and messages per write. Asked of an
  # older herald too: the query lands inside the measured window (it costs
  # the server CPU), so both must pay it or neither.
  local stats=()
  case $2 in herald | heraldplain | before) stats=(--stats 127.0.0.1:"$HTTP_PORT") ;; esac
  # What the broadcast and push messages are, and whether they may come compressed.
  local payload=(--size "$SIZE") content=()
  [ -n "$JSON" ] && payload=(--json "$JSON") && content=(--json "$JSON")
  # heraldplain is herald with --deflate off: its clients offer nothing,
  # so that one run compares compression on and off.
  [ "$DEFLATE" = 1 ] && [ "$2" != heraldplain ] && payload+=(--deflate) && content+=(--deflate)
  case $1 in
    idle) echo idle --ws "$ws" --text "$text" --pid "$SERVER_PID" --counts "$IDLE_COUNTS" "${common[@]}" ;;
    broadcast) echo broadcast --ws "$ws" --conns "$CONNS" --messages "$MESSAGES" "${payload[@]}" --runs 1 --pid "$SERVER_PID" "${stats[@]}" "${common[@]}" ;;
    push) echo push --ws "$ws" --text "$text" --conns "$CONNS" --lines "$LINES" ${IN_FLIGHT:+--in-flight "$IN_FLIGHT"} "${content[@]}" --runs 1 --pid "$SERVER_PID" "${stats[@]}" "${common[@]}" ;;
    latency) echo latency --ws "$ws" --text "$text" --conns "$LAT_CONNS" --rate "$RATE" --seconds "$LAT_SECONDS" --runs 1 "${common[@]}" ;;
    handshakes) echo handshakes --ws "$ws" --total "$TOTAL" --concurrency "$CONCURRENCY" --runs 1 --pid "$SERVER_PID" "${common[@]}" ;;
    # Publish CONNS x MESSAGES lines of SIZE bytes (the whole line is the
    # message): to one topic all the clients joined, or as a broadcast.
    topic) echo topic --ws "$ws" --text "$text" --conns "$CONNS" --messages "$MESSAGES" --size "$SIZE" --publish topic --runs 1 --pid "$SERVER_PID" "${stats[@]}" "${common[@]}" ;;
    topicall) echo topic --ws "$ws" --text "$text" --conns "$CONNS" --messages "$MESSAGES" --size "$SIZE" --publish all --runs 1 --pid "$SERVER_PID" "${stats[@]}" "${common[@]}" ;;
    membership) echo membership --ws "$ws" --text "$text" --pid "$SERVER_PID" --stats 127.0.0.1:"$HTTP_PORT" --conns "$3" --topics "$TOPICS" --per-line "$PER_LINE" "${common[@]}" ;;
  esac
}

failures=()
started=$(date +%s)
for mode in $MODES; do
  for round in $(seq "$ROUNDS"); do
    for variant in $(variants "$mode"); do
      for server in $SERVERS; do
        if herald_only "$mode" && ! speaks_topics "$server"; then
          [ "$round" = 1 ] && [ "$variant" = "$(variants "$mode" | cut -d' ' -f1)" ] &&
            echo "== $mode: $server skipped (no topics)" | tee -a "$LOG"
          continue
        fi
        next_ports
        what=$mode
        [ "$variant" != - ] && what="$mode $variant"
        echo "== $what, round $round/$ROUNDS: $server (ws :$WS_PORT, text :$TEXT_PORT)" | tee -a "$LOG"
        if ! start_server "$server"; then
          failures+=("$what/$server/round $round: server did not start")
          continue
        fi
        # shellcheck disable=SC2046 # the arguments contain no spaces
        timeout "$RUN_LIMIT" "$BENCH" $(bench_args "$mode" "$server" "$variant") >"$OUT/run.out" 2>&1
        rc=$?
        grep '^{' "$OUT/run.out" >>"$RESULTS"
        grep -v '^{' "$OUT/run.out" | tee -a "$LOG"
        if [ $rc -ne 0 ]; then
          failures+=("$what/$server/round $round: exit $rc")
        fi
        stop_server
        sleep 1 # let the closed connections go before the next server starts
      done
    done
  done
done
rm -f "$OUT/run.out"

echo
echo "== medians ($ROUNDS round(s) each; $(($(date +%s) - started)) s in all); files in $OUT"
echo
cat "$OUT/machine.txt"
echo
"$BENCH" table "$RESULTS" | tee "$OUT/table.md"
if [ ${#failures[@]} -gt 0 ]; then
  echo
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
