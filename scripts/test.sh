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

# The HTTP API's third-party clients: the official Python MCP SDK and
# schemathesis (a venv), and the AsyncAPI parser (npm).
if [ ! -x "$TOOLS/py/bin/schemathesis" ] || [ ! -x "$TOOLS/py/bin/python" ]; then
    step "installing the Python MCP SDK and schemathesis into $TOOLS/py (first run only)"
    python3 -m venv "$TOOLS/py"
    "$TOOLS/py/bin/pip" install --quiet --disable-pip-version-check 'mcp==2.3.*' 'schemathesis==4.32.*'
fi
if [ ! -d "$TOOLS/node/node_modules/@asyncapi/parser" ]; then
    step "installing @asyncapi/parser into $TOOLS/node (first run only)"
    mkdir -p "$TOOLS/node"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" '@asyncapi/parser@3.6'
fi
export ARW_TOOLS_DIR="$TOOLS"

step "cargo fmt --check (host and guest workspaces)"
cargo fmt --all --check
(cd components && cargo fmt --all --check)

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked
