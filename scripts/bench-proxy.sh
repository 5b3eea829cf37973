#!/usr/bin/env bash
# Benchmark of the pull-through proxy: CNCF Distribution (Debian's docker-registry) as the
# upstream, oci-storage (release) proxying it as docker.io; a 1 GiB blob pulled directly, then
# through the proxy cold and warm. Usage: scripts/bench-proxy.sh [--blob-mib 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-tools.sh >/dev/null
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bins

source scripts/bench-lib.sh
up_port=$(free_port); proxy_port=$(free_port)
password="bench-$(date +%s)"

start_distribution upstream "$up_port"
cat > "$work/proxy.yaml" <<YAML
server: {host: 127.0.0.1, port: $proxy_port}
storage: {type: fs, fs: {path: $work/proxy}}
auth: {users: [{username: admin, password: "$password"}]}
logging: {level: warn}
proxy:
  enabled: true
  cache: {maxSizeGB: 4}
  registries: [{name: docker.io, url: "http://127.0.0.1:$up_port"}]
YAML
target/release/oci-storage serve --config "$work/proxy.yaml" >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$up_port/v2/"
wait_http "http://127.0.0.1:$proxy_port/healthz"
target/release/proxy-bench --upstream "http://127.0.0.1:$up_port" --proxy "http://127.0.0.1:$proxy_port" \
  --user admin --password "$password" "$@"
