#!/usr/bin/env bash
# The whole test suite, from a fresh clone: toolchain target, formatting,
# lints, then every test (unit, end-to-end with real components and Cedar,
# CLI processes, doc tests). This is the command README.md gives and
# .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: $(rustc --version), wasm32-wasip2 target"
rustup target add wasm32-wasip2 >/dev/null

# Third-party clients the interop tests drive. Installed once into a cache
# outside the clone; later runs reuse them.
TOOLS="${ARW_TOOLS_DIR:-$HOME/.cache/arw/tools}"
if [ ! -x "$TOOLS/bin/wkg" ]; then
    step "installing wkg 0.16 (wasm-pkg-tools) into $TOOLS (first run only)"
    cargo install wkg --version '~0.16' --locked --root "$TOOLS"
fi
export WKG="$TOOLS/bin/wkg"

step "cargo fmt --check (host and guest workspaces)"
cargo fmt --all --check
(cd components && cargo fmt --all --check)

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked
