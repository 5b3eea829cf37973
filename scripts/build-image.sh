#!/usr/bin/env bash
# Builds the oci-storage container image without Docker, the same image as ../Dockerfile
# describes: the binary on a minimal Debian root filesystem (libc6, libgcc-s1, ca-certificates,
# tzdata: the part of distroless/cc the binary uses), user 65532:65532, entrypoint
# `oci-storage`, command `serve`, storage under the /data volume, port 3030. Tagged
# oci-storage:<the server crate's version> in an OCI image layout, and optionally pushed into
# a registry with skopeo.
#
#   scripts/build-image.sh [--binary PATH] [--output DIR] [--push HOST:PORT] [--creds USER:PASSWORD]
#
#   --binary PATH   package this binary (e.g. target/debug/oci-storage) instead of building
#                   one with `cargo build --release --locked -p oci-storage-server`
#   --output DIR    the OCI image layout to write (replaced if it is one); default
#                   target/oci-image. skopeo reads it as oci:DIR:<version>
#   --push HOST:PORT  then copy the image to HOST:PORT/oci-storage:<version> (plain HTTP for
#                   localhost and 127.0.0.1)
#   --creds USER:PASSWORD  credentials for the push (default: $OCI_STORAGE_PUSH_CREDS, else
#                   skopeo's own login)
#
# Needs root (file ownership in the image), umoci and skopeo (scripts/install-test-tools.sh
# installs them), apt-get on a Debian host (the packages come from the host's own sources, so
# the image's libc is the one the binary was built against), and network access to the Debian
# mirror the first time (packages are kept in target/image-debs).
set -euo pipefail

image_name=oci-storage
packages=(libc6 libgcc-s1 ca-certificates tzdata)
uid=65532

die() {
  echo "build-image: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

repo_root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
binary=""
output=""
push=""
creds=${OCI_STORAGE_PUSH_CREDS:-}
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --output) output=${2:?--output needs a directory}; shift 2 ;;
    --push) push=${2:?--push needs HOST:PORT}; shift 2 ;;
    --creds) creds=${2:?--creds needs USER:PASSWORD}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
output=${output:-$target_dir/oci-image}

[ "$(id -u)" = 0 ] || die "run as root: the image's files must belong to root and /data to $uid"
for tool in umoci apt-get apt-cache dpkg-deb strip git cargo; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-test-tools.sh installs umoci and skopeo)"
done
if [ -n "$push" ]; then
  command -v skopeo >/dev/null || die "skopeo is not installed (scripts/install-test-tools.sh)"
fi

cd "$repo_root"

# What the image is: the server crate's version (the chart's appVersion), the commit, the project.
pkgid=$(cargo pkgid --offline -p oci-storage-server)
version=${pkgid##*[@#]}
revision=$(git rev-parse HEAD)
# The project's address as Cargo.toml states it (a clone's remote may be a local path).
source_url=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^repository = "\(.*\)"$/\1/p' Cargo.toml)
license=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^license = "\(.*\)"$/\1/p' Cargo.toml)
# Timestamps are the commit's (or SOURCE_DATE_EPOCH's): the same inputs give the same image.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

if [ -z "$binary" ]; then
  echo "build-image: cargo build --release --locked -p oci-storage-server"
  cargo build --release --locked -p oci-storage-server
  binary=$target_dir/release/oci-storage
fi
[ -x "$binary" ] || die "$binary is not an executable"
binary_version=$("$binary" --version)
[ "$binary_version" = "oci-storage $version" ] ||
  die "$binary says '$binary_version', the server crate is $version: rebuild it"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"

# The packages, exactly these and none of their dependencies: libgcc-s1's gcc-12-base is
# documentation, and ca-certificates' openssl and debconf only serve its maintainer script,
# whose one effect (the certificate bundle) is reproduced below. Maintainer scripts never run.
debs=$target_dir/image-debs
mkdir -p "$debs"
candidate() { apt-cache policy "$1" | sed -n 's/^ *Candidate: //p'; }
if [ -z "$(candidate libc6)" ] || [ "$(candidate libc6)" = "(none)" ]; then
  apt-get update -qq
fi
for pkg in "${packages[@]}"; do
  ver=$(candidate "$pkg")
  if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
    die "no Debian package $pkg in the host's apt sources"
  fi
  deb=$(compgen -G "$debs/${pkg}_${ver//:/%3a}_*.deb" | head -n1 || true)
  if [ -z "$deb" ]; then
    (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver")
    deb=$(compgen -G "$debs/${pkg}_${ver//:/%3a}_*.deb" | head -n1)
  fi
  dpkg-deb -x "$deb" "$rootfs"
  # Package records where scanners (trivy, grype, syft) look for them in distroless images.
  mkdir -p "$rootfs/var/lib/dpkg/status.d"
  dpkg-deb -f "$deb" >"$rootfs/var/lib/dpkg/status.d/$pkg"
done

# Documentation other than the licences, and glibc's iconv modules (nothing here uses iconv).
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
rm -rf "$rootfs/usr/share/man" "$rootfs/usr/share/info" "$rootfs/usr/share/lintian" \
  "$rootfs"/usr/lib/*/gconv

# What update-ca-certificates would have written: every Mozilla certificate, in one bundle.
mkdir -p "$rootfs/etc/ssl/certs"
find "$rootfs/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort |
  xargs cat >"$rootfs/etc/ssl/certs/ca-certificates.crt"

# Users and the few files and directories a process expects.
cat >"$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:$uid:$uid:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<GROUP
root:x:0:
nonroot:x:$uid:
GROUP
echo "hosts: files dns" >"$rootfs/etc/nsswitch.conf"
mkdir -p "$rootfs/root" "$rootfs/home/nonroot" "$rootfs/data" "$rootfs/tmp" \
  "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/usr/local/bin"
chmod 0700 "$rootfs/root"
chmod 1777 "$rootfs/tmp"
chown "$uid:$uid" "$rootfs/home/nonroot" "$rootfs/data"

# The binary, without debug information (a release build has none; symbols stay for backtraces).
strip --strip-debug -o "$rootfs/usr/local/bin/oci-storage" "$binary"
chmod 0755 "$rootfs/usr/local/bin/oci-storage"
chroot "$rootfs" /usr/local/bin/oci-storage --version >/dev/null ||
  die "the binary does not run in the image's root filesystem"

# The OCI image: one layer, the Dockerfile's configuration and labels (from git and Cargo here).
if [ -e "$output" ]; then
  [ -f "$output/oci-layout" ] || die "$output exists and is not an OCI image layout"
  rm -rf "$output"
fi
ref="$output:$version"
umoci init --layout "$output"
umoci new --image "$ref"
mapfile -t top < <(cd "$rootfs" && LC_ALL=C ls -A)
tar -C "$rootfs" -cf "$work/layer.tar" --sort=name --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --mtime="@$epoch" --clamp-mtime "${top[@]}"
umoci raw add-layer --image "$ref" --history.created "$created" \
  --history.created_by "scripts/build-image.sh (root filesystem)" "$work/layer.tar"
label_args=()
for label in \
  "org.opencontainers.image.title=$image_name" \
  "org.opencontainers.image.description=A lightweight OCI registry for Helm charts and container images" \
  "org.opencontainers.image.version=$version" \
  "org.opencontainers.image.revision=$revision" \
  "org.opencontainers.image.source=$source_url" \
  "org.opencontainers.image.licenses=$license"; do
  label_args+=(--config.label "$label" --manifest.annotation "$label")
done
umoci config --image "$ref" \
  --os linux --architecture "$(dpkg --print-architecture)" --created "$created" \
  --config.user "$uid:$uid" \
  --config.entrypoint /usr/local/bin/oci-storage --config.cmd serve \
  --config.workingdir / \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.env OCI_STORAGE__STORAGE__FS__PATH=/data \
  --config.exposedports 3030/tcp \
  --config.volume /data \
  "${label_args[@]}" \
  --history.created "$created" --history.created_by "scripts/build-image.sh (configuration)"
umoci gc --layout "$output"

echo "build-image: $image_name:$version ($(du -sh "$rootfs" | cut -f1) unpacked," \
  "$(du -sh "$output/blobs" | cut -f1) compressed) in $output; skopeo reads it as oci:$ref"

if [ -n "$push" ]; then
  dest="docker://$push/$image_name:$version"
  args=(copy --quiet)
  case $push in
    localhost:* | 127.0.0.1:* | "[::1]":*) args+=(--dest-tls-verify=false) ;;
  esac
  if [ -n "$creds" ]; then
    # A throwaway auth file, so the password is not on any command line.
    auth=$work/auth.json
    printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$push" "$(printf '%s' "$creds" | base64 -w0)" >"$auth"
    args+=(--authfile "$auth")
  fi
  skopeo "${args[@]}" "oci:$ref" "$dest"
  echo "build-image: pushed $push/$image_name:$version"
fi
