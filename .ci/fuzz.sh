#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target of herald for a bounded time, on the stable
# toolchain (no sanitizer), from a throwaway copy of the committed seeds.
# Committed regression inputs (fuzz/regressions/<target>-*) are replayed
# first. Exits non-zero on any crash, printing where the crashing input is.
#
#   bash .ci/fuzz.sh                      # 30 s per target
#   FUZZ_SECONDS=600 bash .ci/fuzz.sh     # longer
#   FUZZ_TARGETS="message line" bash .ci/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
seconds=${FUZZ_SECONDS:-30}
targets=(${FUZZ_TARGETS:-frame_header message handshake line command connection token resp inflate} redis_link)
started=$(date +%s)
step() { echo; echo "=== $* ($(date +%T))"; }

# Longest input per target: a little past each limit the target configures.
max_len() {
  case $1 in
    frame_header) echo 256 ;;    # header (<= 14) + round-trip recipe
    message) echo 16384 ;;       # past max_message 8192 (and its reuse buffer)
    handshake) echo 2048 ;;      # past the largest max_head (1024)
    line) echo 8192 ;;           # past the largest max_line (4096)
    command) echo 4096 ;;        # deep nesting and long lines
    connection) echo 4096 ;;     # past the server's max_head and max_line (1024)
    token) echo 8192 ;;          # past MAX_TOKEN (4096)
    resp) echo 4096 ;;           # past the small limits the input picks (max_line 16, max_bulk 64)
    inflate) echo 16384 ;;       # compressed bytes; bombs inflate far past the caps
    *) echo 4096 ;;
  esac
}

step "prerequisites"
if ! command -v c++ >/dev/null 2>&1; then
  # libfuzzer-sys compiles libFuzzer, which is C++.
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo --version
cargo fuzz --version

step "build (stable, --sanitizer none)"
cargo fuzz build --sanitizer none

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
  step "$t: ${seconds}s, -max_len=$(max_len "$t")"
  log="$work/$t.log"
  for input in fuzz/regressions/"$t"-*; do
    [ -e "$input" ] || continue
    if cargo fuzz run --sanitizer none "$t" "$input" -- -rss_limit_mb=2048 -timeout=20 \
        >"$log.regression" 2>&1; then
      echo "regression input $input: passes"
    else
      echo "FAILED: regression input $input still crashes $t:"
      grep -E -A2 "panicked at|ERROR: libFuzzer|==ERROR" "$log.regression" | head -12 || true
      failed+=("$t ($input)")
    fi
  done
  corpus="$work/corpus/$t"
  mkdir -p "$corpus"
  cp -r fuzz/corpus/"$t"/. "$corpus"/ 2>/dev/null || true
  if cargo fuzz run --sanitizer none "$t" "$corpus" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
      -timeout=20 -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    echo "FAILED: $t crashed:"
    grep -E -A6 "panicked at|ERROR: libFuzzer|==ERROR" "$log" | head -30 || true
    artifact=$(grep -o "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tail -1)
    echo "crash artifact: ${artifact:-none written (see the log above)}"
    if [ -n "$artifact" ]; then
      echo "reproduce: cargo fuzz run --sanitizer none $t $artifact"
    fi
    failed+=("$t (${artifact:-no artifact})")
  fi
  execs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || true)
  rate=$(grep -o "stat::average_exec_per_sec: *[0-9]*" "$log" | grep -o "[0-9]*$" || true)
  cov=$(grep -E "(DONE|INITED) +cov" "$log" | tail -1 | grep -o "cov: [0-9]*" || true)
  line="$t: $status, ${execs:-?} inputs, ${rate:-?} exec/s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) files"
  echo "$line"
  summary+=("$line")
done

step "summary ($(($(date +%s) - started)) s)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FUZZING FAILED:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, no crash"
