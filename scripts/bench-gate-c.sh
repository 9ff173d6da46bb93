#!/usr/bin/env bash
# What a gate in C costs per check, against arw:gating in the same run:
# scaffolds and builds the C gate of `arw new gate --lang c` (keyguard-c),
# then runs host/runtime/benches/gate.rs with it (`gate/check-c-50-rules`
# beside `gate/check-50-contracts`). Needs clang, lld and wasi-libc (the
# toolchain scripts/test.sh installs). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p arw
ARW="${CARGO_TARGET_DIR:-target}/release/arw"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$ARW" new gate --lang c keyguard-c --namespace bench --dir "$work/keyguard-c" >/dev/null
"$ARW" build "$work/keyguard-c" --log warn >/dev/null
ARW_BENCH_C_GATE="$work/keyguard-c/keyguard-c.wasm" cargo bench --quiet -p arw-host --bench gate -- "$@"
