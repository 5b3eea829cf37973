#!/usr/bin/env bash
# The test command: installs every real client the suite drives (idempotent), then checks
# formatting and lints, and runs every test (unit, storage conformance, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
