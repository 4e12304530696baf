#!/bin/sh
# Fuzz the Butane parser/translator (and the raw Ignition validator) on stable Rust.
# Usage: fuzz/butane/run.sh [butane_translate|ignition_validate] [seconds]
set -eu
cd "$(dirname "$0")"
target=${1:-butane_translate}
secs=${2:-600}
mkdir -p "corpus/$target"
cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . "$target" "corpus/$target" -- -max_total_time="$secs" -max_len=8192 -timeout=10
