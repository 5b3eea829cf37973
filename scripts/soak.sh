#!/usr/bin/env bash
# A steady mixed load on the release oci-storage (fs storage, Basic auth for every request),
# watching its memory:
# 32 clients for 10 minutes by default. Prints the RSS over time and per-operation p50/p99
# (numbers are reported, never asserted; figures in docs/BENCHMARKS.md). Usage:
#   scripts/soak.sh [--allocator jemalloc|system|mimalloc] [--sendfile auto|always|never]
#                   [--clients 32] [--seconds 600] [--report-every 30]
# --allocator builds the server with that global allocator (jemalloc is the default build);
# --sendfile sets server.sendfile (the clients are on loopback: auto copies).
set -euo pipefail
cd "$(dirname "$0")/.."

allocator=jemalloc
sendfile=auto
args=()
while (($#)); do
  case $1 in
    --allocator) allocator=$2; shift 2 ;;
    --sendfile) sendfile=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
case $allocator in
  jemalloc) features=() ;;
  system) features=(--no-default-features) ;;
  mimalloc) features=(--no-default-features --features mimalloc) ;;
  *) echo "unknown allocator $allocator (jemalloc, system or mimalloc)" >&2; exit 2 ;;
esac

cargo build --release -q -p oci-storage-tests --bin soak
cargo build --release -q -p oci-storage-server "${features[@]}"
source scripts/bench-lib.sh
# A copy, so that building another allocator's binary later does not touch the one running.
cp target/release/oci-storage "$work/oci-storage-$allocator"

port=$(free_port)
password="soak-$(date +%s)"
start_oci_storage "$port" "$password" "$work/oci-storage-$allocator" oci-storage "sendfile: $sendfile"
server_pid=${pids[-1]}
wait_http "http://127.0.0.1:$port/healthz"

echo "allocator: $allocator, sendfile: $sendfile"
target/release/soak --url "http://127.0.0.1:$port" --pid "$server_pid" \
  --user admin --password "$password" "${args[@]}"
if grep -q -i -E 'panick|error' "$work/oci-storage.log"; then
  echo "server log:" >&2; tail -20 "$work/oci-storage.log" >&2
fi
