#!/usr/bin/env bash
# Benchmark backup and restore: a registry of ~2.5 GiB in ~1,000 blobs on fs, backed up to
# SeaweedFS with `oci-storage backup` and restored into an empty fs registry with
# `oci-storage restore`, against `rclone sync` of the same data directory to the same server
# (and back) in the same run; then a registry of 10,000 small blobs, where the no-change
# backup is timed (and rclone's no-change sync). Wall time and peak RSS from /usr/bin/time;
# numbers are reported, never asserted.
# Usage: scripts/bench-backup.sh [--repos 64] [--images 4] [--layers 3]
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-tools.sh >/dev/null
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bins

source scripts/bench-lib.sh

key=AKIDBENCH secret=SECRETBENCH
start_seaweedfs "$key" "$secret" ours rclone ours-small rclone-small
password="bench-$(date +%s)"
bin=target/release/oci-storage

# rclone's S3 remote on the same server, configured through the environment (without
# AWS_CA_BUNDLE, set on some machines, which its SDK cannot use with its own transport).
rclone=(env -u AWS_CA_BUNDLE rclone)
export RCLONE_CONFIG_SW_TYPE=s3 RCLONE_CONFIG_SW_PROVIDER=SeaweedFS \
  RCLONE_CONFIG_SW_ACCESS_KEY_ID=$key RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=$secret \
  RCLONE_CONFIG_SW_ENDPOINT=$s3 RCLONE_CONFIG_SW_REGION=us-east-1 RCLONE_CONFIG=/dev/null

# config NAME DATA BUCKET: an oci-storage configuration with fs storage in DATA and backups to
# BUCKET on SeaweedFS.
config() {
  cat > "$work/$1.yml" <<YAML
server: {host: 127.0.0.1, port: ${4:-0}}
storage: {type: fs, fs: {path: $2}}
auth: {users: [{username: admin, password: "$password"}]}
logging: {level: warn}
backup:
  enabled: true
  aws: {bucket: $3, region: us-east-1, endpoint: "$s3", forcePathStyle: true,
        accessKeyId: $key, secretAccessKey: $secret}
YAML
}

# timed LABEL CMD…: runs CMD, appends "LABEL seconds peak-KiB" to $work/times.
timed() {
  local label=$1; shift
  /usr/bin/time -f "$label %e %M" -a -o "$work/times" "$@" >"$work/$label.out" 2>&1 \
    || { cat "$work/$label.out" >&2; exit 1; }
}

# fill NAME ARGS…: starts a registry on $work/NAME, fills it with backup-bench, stops it.
fill() {
  local name=$1; shift
  local port; port=$(free_port)
  config "$name" "$work/$name" unused "$port"
  "$bin" serve --config "$work/$name.yml" >"$work/$name.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:$port/healthz"
  target/release/backup-bench --url "http://127.0.0.1:$port" --password "$password" "$@" \
    > "$work/$name.filled"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

fill big "$@"
read -r blobs bytes < <(sed 's/blobs=\([0-9]*\) bytes=\([0-9]*\)/\1 \2/' "$work/big.filled")
disk=$(du -sb "$work/big" | cut -f1)
echo "registry: $blobs blobs, $bytes bytes of content ($disk bytes in the data directory)" >&2

config big "$work/big" ours
timed backup-full "$bin" backup --config "$work/big.yml"
timed rclone-full-t4 "${rclone[@]}" sync "$work/big" sw:rclone/t4 --transfers 4
timed rclone-full-t8 "${rclone[@]}" sync "$work/big" sw:rclone/t8 --transfers 8
timed backup-nochange "$bin" backup --config "$work/big.yml"
config restored "$work/restored" ours
timed restore-full "$bin" restore --config "$work/restored.yml"
timed rclone-restore-t8 "${rclone[@]}" sync sw:rclone/t8 "$work/rclone-restored" --transfers 8

fill small --repos 500 --images 4 --layers 4 --min-bytes 1024 --max-bytes 16384 --seed 2
read -r small_blobs small_bytes < <(sed 's/blobs=\([0-9]*\) bytes=\([0-9]*\)/\1 \2/' "$work/small.filled")
echo "small registry: $small_blobs blobs, $small_bytes bytes" >&2
config small "$work/small" ours-small
timed small-backup-full "$bin" backup --config "$work/small.yml"
timed small-backup-nochange "$bin" backup --config "$work/small.yml"
timed small-rclone-full "${rclone[@]}" sync "$work/small" sw:rclone-small --transfers 8
timed small-rclone-nochange "${rclone[@]}" sync "$work/small" sw:rclone-small --transfers 8

python3 - "$work/times" "$bytes" "$disk" "$blobs" "$small_blobs" <<'PY'
import sys
times = {}
for line in open(sys.argv[1]):
    label, secs, kib = line.split()
    times[label] = (float(secs), int(kib))
content, disk, blobs, small = (int(a) for a in sys.argv[2:6])
mib = 1024 * 1024
def row(label, what, size):
    secs, kib = times[label]
    rate = f"{size / mib / secs:,.0f} MiB/s" if size else ""
    print(f"| {what} | {secs:.2f} s | {rate} | {kib / 1024:.0f} MiB |")
print(f"Registry: {blobs} blobs, {content / mib:,.0f} MiB of content; {disk / mib:,.0f} MiB in its data directory.\n")
print("| run | wall time | rate | peak RSS |")
print("|---|---:|---:|---:|")
row("backup-full", "oci-storage backup, full", content)
row("rclone-full-t4", "rclone sync of the data directory, --transfers 4", disk)
row("rclone-full-t8", "rclone sync of the data directory, --transfers 8", disk)
row("backup-nochange", "oci-storage backup, nothing new", 0)
row("restore-full", "oci-storage restore into an empty fs registry", content)
row("rclone-restore-t8", "rclone sync back into an empty directory, --transfers 8", disk)
print(f"\nSmall registry: {small} blobs.\n")
print("| run | wall time | rate | peak RSS |")
print("|---|---:|---:|---:|")
row("small-backup-full", "oci-storage backup, full", 0)
row("small-backup-nochange", "oci-storage backup, nothing new", 0)
row("small-rclone-full", "rclone sync, full, --transfers 8", 0)
row("small-rclone-nochange", "rclone sync, nothing new, --transfers 8", 0)
PY
