#!/usr/bin/env bash
# Benchmark of the chart side: fills a release build of oci-storage with 10,000 chart versions
# through the ChartMuseum API, then times index.yaml and chart search. Usage:
#   scripts/bench-charts.sh [--versions 10000] [--charts 500]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bins

source scripts/bench-lib.sh
port=$(free_port)
password="bench-$(date +%s)"
cat > "$work/config.yaml" <<YAML
server: {host: 127.0.0.1, port: $port}
storage: {type: fs, fs: {path: $work/data}}
auth: {users: [{username: admin, password: "$password"}]}
logging: {level: warn}
YAML
target/release/oci-storage serve --config "$work/config.yaml" >"$work/log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"
target/release/chart-bench --url "http://127.0.0.1:$port" --user admin --password "$password" "$@"
