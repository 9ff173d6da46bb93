#!/usr/bin/env bash
# The bus and the bus bridge against their baselines (benches/cluster.rs):
# starts a nats-server on a free loopback port with its own store, runs
# `cargo bench -p arw-host --bench cluster` against it, stops it. Not part
# of CI.
#
#   scripts/bench-bridge.sh
#   scripts/bench-bridge.sh -- --measurement-time 10
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ARW_TOOLS_DIR:-$HOME/.cache/arw/tools}"
server="${ARW_NATS_SERVER:-$TOOLS/py/bin/nats-server}"
if [ ! -x "$server" ]; then
    server="$(command -v nats-server || true)"
fi
[ -n "$server" ] || { echo "no nats-server: run scripts/test.sh once (it installs one) or apt-get install nats-server" >&2; exit 1; }

store="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$server" -a 127.0.0.1 -p "$port" -js -sd "$store" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$store"' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
if [ "${1:-}" = "--" ]; then shift; fi
ARW_NATS_URL="nats://127.0.0.1:$port" cargo bench -p arw-host --bench cluster -- "$@"
