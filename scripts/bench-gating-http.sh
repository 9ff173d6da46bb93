#!/usr/bin/env bash
# HTTP throughput with the gating orchestrator in front and without it:
# two `arw up` on this machine, the same first-party components, one with
# `[gating] gates = ["arw:gating"]` and 50 deny contracts none of which
# matches (every one is tried, on both keys a call has, `tools:invoke`
# and `io:ingress:tools.text-stats`, asked in one check), loaded in turn with the same `oha`
# command, alternating, PAIRS times. Not part of CI.
#
#   scripts/bench-gating-http.sh              # 3 pairs of 10 s, 16 connections
#   PAIRS=5 DURATION=20s scripts/bench-gating-http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ARW_TOOLS_DIR:-$HOME/.cache/arw/tools}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
PAIRS="${PAIRS:-3}"
BODY='{"text":"the quick brown fox\njumps over the lazy dog"}'

step() { printf '\n==> %s\n' "$*" >&2; }

[ -x "$TOOLS/bin/oha" ] || { step "installing oha"; cargo install oha --locked --root "$TOOLS"; }
step "building arw (release)"
cargo build --quiet --release -p arw
ARW="${CARGO_TARGET_DIR:-target}/release/arw"

work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The same 50 contracts as benches/gate.rs.
contracts="$work/gated/config/arw/gating.toml"
mkdir -p "$(dirname "$contracts")" "$work/plain/config/arw"
for i in $(seq 0 49); do
    case $((i % 4)) in
        0) cond="patterns = [\"bench:key$i\", \"io:egress:http.host$i.example:*\"]" ;;
        1) cond="patterns = [\"io:ingress:tools.*\"]
caller-names = [\"someone-$i\"]" ;;
        2) cond="patterns = [\"*\"]
node-tags = [\"tag-$i\"]" ;;
        *) cond="patterns = [\"tools:*\", \"io:*\"]
valid-from = \"2020-01-01T00:00:00Z\"
valid-to = \"2020-01-02T00:00:00Z\"" ;;
    esac
    printf '[[contract]]\nid = "c%s"\n%s\ndeny = true\n\n' "$i" "$cond" >>"$contracts"
done
printf '[gating]\ngates = ["arw:gating"]\n' >"$work/gated/config/arw/config.toml"

start() {
    local name=$1 port=$2
    env -u ARW_HTTP__ADMIN_TOKEN XDG_CONFIG_HOME="$work/$name/config" XDG_DATA_HOME="$work/$name/data" \
        "$ARW" up --state-dir "$work/$name/state" --listen "127.0.0.1:$port" --log warn &
    pids+=($!)
}
step "starting arw up without gates on :18093 and with arw:gating on :18094"
start plain 18093
start gated 18094
for port in 18093 18094; do
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null -X POST -H 'content-type: application/json' -d "$BODY" \
            "http://127.0.0.1:$port/tools/text-stats/invoke" && break
        sleep 0.1
    done
done
echo "gates in force: $(XDG_CONFIG_HOME="$work/gated/config" XDG_DATA_HOME="$work/gated/data" \
    "$ARW" gate check tools:invoke --as anonymous --state-dir "$work/gated/check" 2>/dev/null || true)" >&2

run() {
    local name=$1 port=$2 url="http://127.0.0.1:$2/tools/text-stats/invoke"
    "$TOOLS/bin/oha" -z 2s -c "$CONNECTIONS" --no-tui -m POST -T application/json -d "$BODY" "$url" >/dev/null
    "$TOOLS/bin/oha" -z "$DURATION" -c "$CONNECTIONS" --no-tui --output-format json \
        -m POST -T application/json -d "$BODY" "$url" >"$work/$name.json"
    python3 - "$name" "$work/$name.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
print(f"| {name} | {s['requestsPerSec']:.0f} | {p['p50']*1e3:.2f} | {p['p99']*1e3:.2f} | {codes} |")
PY
}

echo
echo "| target | requests/s | p50 ms | p99 ms | statuses |"
echo "|---|---|---|---|---|"
for _ in $(seq 1 "$PAIRS"); do
    run "without gates" 18093
    run "arw:gating, 50 contracts" 18094
done
