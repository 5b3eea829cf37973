#!/usr/bin/env bash
# Copies config/config.yaml into the chart (helm/files/config.yaml), where it is the base of the
# configuration the chart renders into its ConfigMap (values.yaml goes over it). Run it whenever
# config/config.yaml changes: a test fails while the two differ.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/helm/files"
cp "$root/config/config.yaml" "$root/helm/files/config.yaml"
echo "copied config/config.yaml to helm/files/config.yaml"
