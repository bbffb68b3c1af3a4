#!/usr/bin/env bash
# Builds and runs every fuzz target for TARGET_SECONDS each (default 60); exits non-zero as
# soon as one finds a crash (its input is left under fuzz/artifacts/<target>/).
#
#   fuzz/run.sh 60
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/, read only) and grows
# its own corpus in fuzz/corpus/<target>/ (git-ignored, kept between runs).
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 TARGET_SECONDS" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: cargo-fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi

targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build

for target in $targets; do
  mkdir -p "fuzz/corpus/$target"
  echo "== fuzz/$target for ${seconds}s"
  # -rss_limit_mb guards against inputs that make the crate allocate without bound.
  if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1; then
    echo "fuzz/run.sh: $target found a crash; see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz/run.sh: every target ran ${seconds}s without a crash"
