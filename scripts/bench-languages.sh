#!/usr/bin/env bash
# What each authoring language costs: builds the slugify example in Rust,
# C, JavaScript and Python with `arw new` + `arw build` (timing each
# build), then runs host/runtime/benches/languages.rs on the results.
# Needs the toolchains scripts/test.sh and .ci/run install. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARW_TOOLS_DIR="${ARW_TOOLS_DIR:-$HOME/.cache/arw/tools}"
cargo build --quiet --release -p arw
ARW="${CARGO_TARGET_DIR:-target}/release/arw"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "| language | build (arw build) |"
echo "|---|---|"
for lang in rust c js python; do
    name="slugify-$lang"
    "$ARW" new tool --lang "$lang" "$name" --namespace examples --dir "$work/src/$lang" >/dev/null
    # Rust: a warm dependency cache, so the figure is the component's own build.
    [ "$lang" = rust ] && CARGO_TARGET_DIR="$work/rust-target" "$ARW" build "$work/src/$lang" >/dev/null 2>&1 \
        && touch "$work/src/$lang/src/lib.rs"
    started=$(date +%s.%N)
    CARGO_TARGET_DIR="$work/rust-target" "$ARW" build "$work/src/$lang" --log warn >/dev/null
    elapsed=$(echo "$(date +%s.%N) - $started" | bc)
    printf '| %s | %.1f s |\n' "$lang" "$elapsed"
    mkdir -p "$work/bench/$lang"
    cp "$work/src/$lang/$name.wasm" "$work/bench/$lang/"
    cp "$work/src/$lang/manifest.toml" "$work/bench/$lang/$name.toml"
done
echo
ARW_BENCH_LANGS_DIR="$work/bench" cargo bench --quiet -p arw-host --bench languages
echo
echo "($(nproc) cores; cold start = compile + link + health check with an empty AOT cache; warm start = the same from the AOT cache)"
