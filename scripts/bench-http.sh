#!/usr/bin/env bash
# HTTP throughput and latency: ARW's `POST /tools/text-stats/invoke`
# (authorization by Cedar, schema validation, a fresh instance per call)
# against `wasmtime serve` running a wasi:http component that does the same
# text statistics (benches/http/hello), on this machine, in the same run,
# with the same load generator (oha). Not part of CI.
#
#   scripts/bench-http.sh            # 10 s per target, 16 connections
#   DURATION=30s CONNECTIONS=32 scripts/bench-http.sh
#
# Installs oha and wasmtime-cli 48 into $ARW_TOOLS_DIR (~/.cache/arw/tools)
# when missing (wasmtime-cli takes a long while to build the first time).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ARW_TOOLS_DIR:-$HOME/.cache/arw/tools}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
ARW_PORT="${ARW_PORT:-18091}"
WASMTIME_PORT="${WASMTIME_PORT:-18092}"
BODY='{"text":"the quick brown fox\njumps over the lazy dog"}'

step() { printf '\n==> %s\n' "$*" >&2; }

[ -x "$TOOLS/bin/oha" ] || { step "installing oha"; cargo install oha --locked --root "$TOOLS"; }
[ -x "$TOOLS/bin/wasmtime" ] || { step "installing wasmtime-cli 48"; cargo install wasmtime-cli@48.0.8 --locked --root "$TOOLS"; }

step "building the wasmtime serve baseline (benches/http/hello) and arw (release)"
# Its own target dir, whatever CARGO_TARGET_DIR says: HELLO names the path.
(cd benches/http/hello && CARGO_TARGET_DIR=target cargo build --quiet --release --target wasm32-wasip2)
HELLO="benches/http/hello/target/wasm32-wasip2/release/hello_text_stats.wasm"
cargo build --quiet --release -p arw
ARW="${CARGO_TARGET_DIR:-target}/release/arw"

work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

step "starting arw up on :$ARW_PORT and wasmtime serve on :$WASMTIME_PORT"
env -u ARW_HTTP__ADMIN_TOKEN XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
    "$ARW" up --state-dir "$work/state" --listen "127.0.0.1:$ARW_PORT" --log warn &
pids+=($!)
# -S cli: the Rust standard library imports wasi:cli (environment, exit).
"$TOOLS/bin/wasmtime" serve -S cli --addr "127.0.0.1:$WASMTIME_PORT" "$HELLO" 2>"$work/wasmtime.log" &
pids+=($!)

wait_for() {
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null -X POST -H 'content-type: application/json' -d "$BODY" "$1" && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}
ARW_URL="http://127.0.0.1:$ARW_PORT/tools/text-stats/invoke"
WASMTIME_URL="http://127.0.0.1:$WASMTIME_PORT/"
wait_for "$ARW_URL"
wait_for "$WASMTIME_URL"
echo "arw:      $(curl -s -X POST -H 'content-type: application/json' -d "$BODY" "$ARW_URL")" >&2
echo "wasmtime: $(curl -s -X POST -H 'content-type: application/json' -d "$BODY" "$WASMTIME_URL")" >&2

run() {
    local name=$1 url=$2
    # Warm up, then measure.
    "$TOOLS/bin/oha" -z 2s -c "$CONNECTIONS" --no-tui -m POST -T application/json -d "$BODY" "$url" >/dev/null
    "$TOOLS/bin/oha" -z "$DURATION" -c "$CONNECTIONS" --no-tui --output-format json \
        -m POST -T application/json -d "$BODY" "$url" >"$work/$name.json"
    python3 - "$name" "$work/$name.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
print(f"| {name} | {s['requestsPerSec']:.0f} | {p['p50']*1e3:.2f} | {p['p99']*1e3:.2f} | {s['successRate']*100:.1f}% | {codes} |")
PY
}

echo
echo "| target | requests/s | p50 ms | p99 ms | success | statuses |"
echo "|---|---|---|---|---|---|"
run arw "$ARW_URL"
run "wasmtime serve" "$WASMTIME_URL"
echo
echo "($(nproc) cores, $DURATION per target, $CONNECTIONS connections, oha $("$TOOLS/bin/oha" --version | cut -d' ' -f2), $("$TOOLS/bin/wasmtime" --version))"
