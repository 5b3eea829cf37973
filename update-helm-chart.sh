#!/usr/bin/env bash
# Installs or upgrades oci-storage in the cluster of the current kubectl context, from this
# checkout: copies config/config.yaml into the chart, then `helm upgrade --install`.
#
#   ./update-helm-chart.sh [namespace] [release] [helm arguments…]
#
#   namespace  default oci-storage (created if missing)
#   release    default oci-storage
#   helm arguments, passed on, e.g. -f my-values.yaml --set storage.type=s3 --wait
#
# HELM names the helm binary (default: helm).
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)

namespace=oci-storage
release=oci-storage
# The first two arguments are the namespace and the release, unless they are helm options.
if [ $# -gt 0 ] && [[ $1 != -* ]]; then
  namespace=$1
  shift
  if [ $# -gt 0 ] && [[ $1 != -* ]]; then
    release=$1
    shift
  fi
fi

"$root/scripts/copy-config.sh"
set -x
exec "${HELM:-helm}" upgrade --install "$release" "$root/helm" \
  --namespace "$namespace" --create-namespace "$@"
