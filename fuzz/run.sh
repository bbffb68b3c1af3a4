#!/usr/bin/env bash
# Builds and runs every fuzz target for TARGET_SECONDS each (default 60).
#
#   fuzz/run.sh 60
#
# Exit status: 0 when no target crashed; 1 when one did (the input is left under
# fuzz/artifacts/<target>/; replay it with `cargo +nightly fuzz run <target> <file>`);
# 2 when the tools are missing or the targets do not build.
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/, only read) and grows its
# own corpus in fuzz/corpus/<target>/ (git-ignored, kept between runs). The targets are built
# once and the binaries run directly, so that a source edited during the run cannot trigger a
# rebuild that would be mistaken for a crash.
set -uo pipefail

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 TARGET_SECONDS" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.." || exit 2

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: cargo-fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || exit 2
fi

host=$(rustc +nightly -vV | sed -n 's/^host: //p')
targets=$(cargo +nightly fuzz list) || exit 2
if ! cargo +nightly fuzz build; then
  echo "fuzz/run.sh: the fuzz targets do not build" >&2
  exit 2
fi

for target in $targets; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  echo "== fuzz/$target for ${seconds}s"
  # -rss_limit_mb catches inputs that make the crate allocate without bound.
  if ! "fuzz/target/$host/release/$target" \
    -artifact_prefix="fuzz/artifacts/$target/" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    "fuzz/corpus/$target" "fuzz/seeds/$target"; then
    echo "fuzz/run.sh: $target found a crash; see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz/run.sh: every target ran ${seconds}s without a crash"
