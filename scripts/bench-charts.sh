#!/usr/bin/env bash
# Benchmark of the chart side: fills a release build of oci-storage with 10,000 chart versions
# through the ChartMuseum API, then times index.yaml and chart search. Usage:
#   scripts/bench-charts.sh [--versions 10000] [--charts 500]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bins

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
password="bench-$(date +%s)"
cat > "$work/config.yaml" <<YAML
server: {host: 127.0.0.1, port: $port}
storage: {type: fs, fs: {path: $work/data}}
auth: {users: [{username: admin, password: "$password"}]}
logging: {level: warn}
YAML
target/release/oci-storage serve --config "$work/config.yaml" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
target/release/chart-bench --url "http://127.0.0.1:$port" --user admin --password "$password" "$@"
