#!/usr/bin/env bash
# Benchmark oci-storage against CNCF Distribution 2.8 (Debian's docker-registry, the reference)
# in the same run, with nginx serving the same blob as the physical limit for downloads, and
# a second oci-storage with `server.sendfile: always` (the default, auto, copies to clients on
# this host, as all of these are) to show what sending from the page cache does here.
# Prints Markdown tables (numbers are reported, never asserted). Usage:
#   scripts/bench.sh [--blob-mib 1024] [--chunk-mib 16] [--seconds 5] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-tools.sh >/dev/null
if ! command -v nginx >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bins

source scripts/bench-lib.sh
chmod 755 "$work"   # nginx workers run unprivileged

ref_port=$(free_port); ours_port=$(free_port); sendfile_port=$(free_port); nginx_port=$(free_port)
password="bench-$(date +%s)"

start_distribution distribution "$ref_port"
ref_pid=${pids[-1]}

start_oci_storage "$ours_port" "$password"
ours_pid=${pids[-1]}

start_oci_storage "$sendfile_port" "$password" "" oci-storage-sendfile "sendfile: always"
sendfile_pid=${pids[-1]}

mkdir -p "$work/www"
cat > "$work/nginx.conf" <<CONF
daemon off; worker_processes 2; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 256; }
http { access_log off; sendfile on; tcp_nopush on;
  server { listen 127.0.0.1:$nginx_port; root $work/www; } }
CONF
nginx -c "$work/nginx.conf" &
pids+=($!)

wait_http "http://127.0.0.1:$ref_port/v2/"
wait_http "http://127.0.0.1:$ours_port/healthz"
wait_http "http://127.0.0.1:$sendfile_port/healthz"
echo "reference: Distribution $(docker-registry --version 2>/dev/null | head -1)" >&2

target/release/registry-bench \
  --target "distribution=http://127.0.0.1:$ref_port,pid=$ref_pid" \
  --target "oci-storage=http://127.0.0.1:$ours_port,pid=$ours_pid" \
  --target "oci-storage (sendfile: always)=http://127.0.0.1:$sendfile_port,pid=$sendfile_pid" \
  --file-url "http://127.0.0.1:$nginx_port/blob" --write-blob "$work/www/blob" \
  --user admin --password "$password" "$@"
