#!/usr/bin/env bash
# Fuzz every parser of untrusted input (cargo fuzz, libFuzzer + AddressSanitizer)
# for a bounded time per target, and report inputs tried and crashes found.
#
#   bash scripts/fuzz.sh            # 60 s per target (what CI runs)
#   bash scripts/fuzz.sh 600        # 10 minutes per target
#   bash scripts/fuzz.sh 60 http_input manifest_toml   # only these targets
#
# cargo-fuzz is installed into ~/.cache/arw/tools on first use. It needs
# unstable compiler flags (-Zsanitizer): with the pinned stable toolchain
# they are enabled for this build only, with RUSTC_BOOTSTRAP=1. Seeds live
# in fuzz/corpus/<target>; what a run discovers goes to a working copy
# outside the clone, so the committed corpus stays small. A crash is saved
# under fuzz/artifacts/<target>/ and fails the run: turn it into a
# regression test (see docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
shift || true
TOOLS="${ARW_TOOLS_DIR:-$HOME/.cache/arw/tools}"
export PATH="$TOOLS/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${ARW_FUZZ_TARGET_DIR:-$HOME/.cache/arw/fuzz-target}"
WORK="${ARW_FUZZ_WORK_DIR:-$HOME/.cache/arw/fuzz-corpus}"

if ! command -v cargo-fuzz >/dev/null; then
    echo "==> installing cargo-fuzz into $TOOLS (first run only)"
    cargo install cargo-fuzz --version '~0.13' --locked --root "$TOOLS"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

echo "==> building ${#targets[@]} fuzz targets"
cargo fuzz build --fuzz-dir fuzz

report="$CARGO_TARGET_DIR/fuzz-report.md"
{
    echo "| target | seconds | inputs tried | corpus | crashes |"
    echo "|---|---|---|---|---|"
} > "$report"
failed=0
for target in "${targets[@]}"; do
    mkdir -p "$WORK/$target"
    cp -n fuzz/corpus/"$target"/* "$WORK/$target/" 2>/dev/null || true
    log="$CARGO_TARGET_DIR/fuzz-$target.log"
    echo "==> $target for ${SECONDS_PER_TARGET}s"
    status=0
    cargo fuzz run --fuzz-dir fuzz "$target" "$WORK/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=262144 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    corpus=$(find "$WORK/$target" -type f | wc -l)
    crashes=0
    if [ "$status" -ne 0 ]; then
        crashes=1
        failed=1
        echo "CRASH in $target (exit $status); the input is under fuzz/artifacts/$target/:" >&2
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -n 20 >&2 || true
    fi
    echo "| \`$target\` | $SECONDS_PER_TARGET | ${runs:-0} | $corpus | $crashes |" >> "$report"
done
echo
cat "$report"
exit "$failed"
