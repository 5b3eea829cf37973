#!/usr/bin/env bash
# Benchmark the storage backends: oci-storage on SeaweedFS (s3 plugin) and on the filesystem,
# with CNCF Distribution 2.8 on the same SeaweedFS (its s3 driver) as the reference, in the
# same run. Push/pull throughput, manifest GET/HEAD rate and tags/list latency; numbers are
# reported, never asserted. Usage: scripts/bench-storage.sh [--blob-mib 256] [--seconds 5]
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-tools.sh >/dev/null
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bins

source scripts/bench-lib.sh

key=AKIDBENCH secret=SECRETBENCH

start_seaweedfs "$key" "$secret" distribution oci-storage

ref_port=$(free_port); s3_ours=$(free_port); fs_ours=$(free_port)
password="bench-$(date +%s)"

cat > "$work/distribution.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  s3: {accesskey: $key, secretkey: $secret, region: us-east-1, regionendpoint: "$s3",
       bucket: distribution, secure: false, v4auth: true}
  delete: {enabled: true}
  redirect: {disable: true}
http: {addr: 127.0.0.1:$ref_port}
YAML
# AWS_CA_BUNDLE (set on some machines) makes its old AWS SDK refuse to start.
env -u AWS_CA_BUNDLE docker-registry serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
pids+=($!); ref_pid=$!

start_ours() { # $1 port, $2 storage yaml, $3 log name
  cat > "$work/$3.yml" <<YAML
server: {host: 127.0.0.1, port: $1}
storage: $2
auth: {anonymousPull: true, users: [{username: admin, password: "$password"}]}
logging: {level: warn}
YAML
  target/release/oci-storage serve --config "$work/$3.yml" >"$work/$3.log" 2>&1 &
  pids+=($!)
}
start_ours "$s3_ours" "{type: s3, s3: {bucket: oci-storage, region: us-east-1, endpoint: \"$s3\", forcePathStyle: true, accessKeyId: $key, secretAccessKey: $secret}}" ours-s3
s3_pid=${pids[-1]}
start_ours "$fs_ours" "{type: fs, fs: {path: $work/fs}}" ours-fs
fs_pid=${pids[-1]}

wait_http "http://127.0.0.1:$ref_port/v2/"
wait_http "http://127.0.0.1:$s3_ours/healthz"
wait_http "http://127.0.0.1:$fs_ours/healthz"
echo "reference: Distribution $(docker-registry --version 2>/dev/null | head -1) on SeaweedFS $(weed version | head -1)" >&2

target/release/registry-bench \
  --target "distribution-s3=http://127.0.0.1:$ref_port,pid=$ref_pid" \
  --target "oci-storage-s3=http://127.0.0.1:$s3_ours,pid=$s3_pid" \
  --target "oci-storage-fs=http://127.0.0.1:$fs_ours,pid=$fs_pid" \
  --user admin --password "$password" --blob-mib 256 "$@"
