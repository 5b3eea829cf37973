#!/usr/bin/env bash
# The test command: installs every real client the suite drives (idempotent), then checks
# formatting and lints, and runs every test (unit, storage conformance, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line over every test binary (the last binary alone may hold no test).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\nall tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$log"
