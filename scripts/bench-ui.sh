#!/usr/bin/env bash
# Benchmark of the web interface with many repositories: fills a release build of oci-storage
# and the reference (CNCF Distribution, Debian's docker-registry) with the same N image
# repositories (plus charts for oci-storage), then times the pages against the reference's
# `_catalog`. Prints a Markdown table (reported, never asserted). Usage:
#   scripts/bench-ui.sh [--repositories 2000] [--charts 200] [--rounds 20]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || ./scripts/install-test-tools.sh >/dev/null
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bins

source scripts/bench-lib.sh
ref_port=$(free_port); ours_port=$(free_port)
password="bench-$(date +%s)"

start_distribution distribution "$ref_port"

start_oci_storage "$ours_port" "$password"
wait_http "http://127.0.0.1:$ref_port/v2/"
wait_http "http://127.0.0.1:$ours_port/healthz"

target/release/ui-bench --ours "http://127.0.0.1:$ours_port" --reference "http://127.0.0.1:$ref_port" \
  --user admin --password "$password" "$@"
