#!/usr/bin/env bash
# Small devices: static musl builds with the `embedded` profile, the
# footprint budget, the whole test suite on 32-bit (i686, runs natively) and
# the seed flow against the aarch64 binary under qemu-user.
#
#   bash .ci/embedded.sh
#
# A target whose standard library rustup cannot download is reported as
# SKIPPED, not failed (armv7-unknown-linux-musleabihf, here).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { echo; echo "=== $* ($(date +%T))"; }

# The budget for x86-64 (issue 11): stripped static binary and RSS at start.
# 512 KiB and 640 KiB until issue 20: history and resume, backpressure and
# rolling restarts are part of the device build too (one protocol
# everywhere) and cost about 90 KiB of code, which is nearly all resident at
# start (the kernel maps a small binary in 64 KiB fault-around chunks).
# 640 KiB and 768 KiB until issue 21: topics (with their history, presence
# and cluster channels), kicks and heartbeats, which the official clients
# rely on, cost about 92 KiB more (708 KiB, 756 KiB at start).
MAX_BINARY=$((768 * 1024))
MAX_START_RSS_KIB=896

step "targets"
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl i686-unknown-linux-musl armv7-unknown-linux-musleabihf)
have=()
skipped=()
for t in "${targets[@]}"; do
  if rustup target list --installed | grep -qx "$t"; then
    have+=("$t")
  elif rustup target add "$t" >/dev/null 2>&1; then
    have+=("$t")
  else
    echo "SKIPPED: $t (rustup could not download its standard library on this machine)"
    skipped+=("$t")
  fi
done
echo "building for: ${have[*]}"
has() { [[ " ${have[*]} " == *" $1 "* ]]; }

# Two builds per target:
# - plain: `cargo build --profile embedded --target T` (stable, nothing else);
# - small: the same with std rebuilt without its backtrace symbolizer
#   (gimli, addr2line, libunwind, demangler: ~300 KiB that every binary
#   linking the prebuilt std carries), via rust-src and RUSTC_BOOTSTRAP=1 on
#   the stable toolchain. This is the build for devices and the one the
#   budget is for.
SMALL_FLAGS=(-Zbuild-std=std,panic_abort -Zbuild-std-features=)
small_ok=1
if ! rustup component list --installed | grep -q '^rust-src' && ! rustup component add rust-src >/dev/null 2>&1; then
  echo "SKIPPED: small builds (rustup could not download rust-src on this machine)"
  small_ok=0
fi
small_bin() { echo "target/small/$1/embedded/herald"; }

# README.md's small-device table must say what this run measures (within
# 5%: a figure that drifted further fails here instead of misleading a
# reader): its row for target $1 gives KiB for the plain and small builds.
readme_sizes_match() {
  local row kib
  row=$(grep -E "^\| $1 \|" README.md) || { echo "FAILED: README.md's small-device table has no row for $1"; exit 1; }
  for pair in "2:$2" "3:$3"; do
    local col=${pair%%:*} bytes=${pair#*:}
    [ "$bytes" = - ] && continue
    kib=$(echo "$row" | awk -F'|' -v c=$((col + 1)) '{gsub(/[^0-9]/, "", $c); print $c}')
    local measured=$((bytes / 1024))
    if [ -z "$kib" ] || [ $((kib * 100)) -lt $((measured * 95)) ] || [ $((kib * 100)) -gt $((measured * 105)) ]; then
      echo "FAILED: README.md says ${kib:-nothing} KiB for $1 (column $col), this build is $measured KiB: update the small-device table"
      exit 1
    fi
  done
}

step "static builds (cargo build --profile embedded)"
printf '%-34s %14s %14s\n' target plain small
for t in "${have[@]}"; do
  cargo build -q --profile embedded --target "$t" --bin herald --no-default-features
  plain=$(stat -c %s "target/$t/embedded/herald")
  small=-
  if [ $small_ok = 1 ]; then
    RUSTC_BOOTSTRAP=1 cargo build -q --profile embedded --target "$t" --bin herald --no-default-features \
      "${SMALL_FLAGS[@]}" --target-dir target/small
    small=$(stat -c %s "$(small_bin "$t")")
  fi
  printf '%-34s %14s %14s\n' "$t" "$plain" "$small"
  readme_sizes_match "$t" "$plain" "$small"
done

if has x86_64-unknown-linux-musl && [ $small_ok = 1 ]; then
  step "footprint budget (x86-64, small build)"
  bin=$(small_bin x86_64-unknown-linux-musl)
  size=$(stat -c %s "$bin")
  if [ "$size" -gt "$MAX_BINARY" ]; then
    echo "FAILED: $bin is $size bytes, over the $MAX_BINARY-byte budget"
    exit 1
  fi
  echo "binary: $size bytes <= $MAX_BINARY"
  rss=$(bash benches/embedded/start-rss.sh "$bin")
  if [ "$rss" -gt "$MAX_START_RSS_KIB" ]; then
    echo "FAILED: RSS right after start is $rss KiB, over the $MAX_START_RSS_KIB KiB budget"
    exit 1
  fi
  echo "RSS right after start: $rss KiB <= $MAX_START_RSS_KIB KiB"
  echo "(plain build: $(stat -c %s target/x86_64-unknown-linux-musl/embedded/herald) bytes," \
    "$(bash benches/embedded/start-rss.sh target/x86_64-unknown-linux-musl/embedded/herald) KiB at start)"
fi

if has i686-unknown-linux-musl; then
  step "the whole test suite on 32-bit (i686-unknown-linux-musl, native)"
  log=$(mktemp)
  if cargo test --target i686-unknown-linux-musl >"$log" 2>&1; then
    grep -E "^test result" "$log"
  else
    grep -E -A8 "panicked|^failures:|FAILED|^error" "$log" | head -80
    echo "FAILED: cargo test --target i686-unknown-linux-musl"
    exit 1
  fi
fi

if has aarch64-unknown-linux-musl; then
  step "the seed flow against the aarch64 binary under qemu-aarch64"
  if ! command -v qemu-aarch64 >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user
  fi
  bin=target/aarch64-unknown-linux-musl/embedded/herald
  [ $small_ok = 1 ] && bin=$(small_bin aarch64-unknown-linux-musl)
  qemu-aarch64 "$bin" --version
  # tests/push.rs is the seed flow end to end (a WebSocket client binds a
  # uid, text-port pushes arrive, ok/fail replies, broadcast, routing, HTTP);
  # HERALD_BIN/HERALD_RUNNER make its helpers start the aarch64 binary.
  HERALD_BIN=$PWD/$bin HERALD_RUNNER=qemu-aarch64 cargo test -q --test push
fi

step "done"
[ ${#skipped[@]} -eq 0 ] || echo "skipped (could not be downloaded): ${skipped[*]}"
echo "embedded: ${have[*]} built and checked"
