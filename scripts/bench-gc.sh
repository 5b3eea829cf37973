#!/usr/bin/env bash
# Benchmark garbage collection: the same 100,000 small blobs pushed over HTTP into oci-storage
# (release build, fs storage with fsync) and into the reference, CNCF Distribution 2.8
# (Debian's docker-registry, filesystem storage), half of the manifests deleted by digest on
# both, then Distribution's `garbage-collect --delete-untagged` (with the registry stopped, as
# it requires) and `oci-storage gc` (gc.delay 1s, gc.untagged; the server keeps running) twice:
# run 1 marks and moves the garbage into the trash, run 2 (≥ 1 s later) empties the trash.
# Wall time and peak RSS of each GC process from /usr/bin/time; blobs counted on disk before
# and after; the script fails unless both collected the blobs the deletes left unreferenced
# and kept the same digests. Prints a Markdown table (times reported, never asserted).
# Usage: scripts/bench-gc.sh [--repos 1000] [--images 14] [--layers 5] [--shared 2]
#        [--min-bytes 1024] [--max-bytes 4096] [--connections 32]
# (blobs = repos × (shared + images × (layers + 2)); the defaults give 100,000). Binaries are
# built into and run from $CARGO_TARGET_DIR when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release -q -p oci-storage-server -p oci-storage-tests --bin oci-storage --bin gc-bench

source scripts/bench-lib.sh
release=${CARGO_TARGET_DIR:-target}/release
bin=$release/oci-storage
password="bench-$(date +%s)"
ref_port=$(free_port); ours_port=$(free_port)
ours=$work/oci-storage ref=$work/distribution

start_distribution distribution "$ref_port"
cat > "$work/ours.yml" <<YAML
server: {host: 127.0.0.1, port: $ours_port}
storage: {type: fs, fs: {path: $ours}}
auth: {users: [{username: admin, password: "$password"}]}
logging: {level: warn}
gc: {delay: 1s, untagged: true}
YAML
"$bin" serve --config "$work/ours.yml" >"$work/ours.log" 2>&1 &
ours_pid=$!
pids+=("$ours_pid")
wait_http "http://127.0.0.1:$ref_port/v2/"
wait_http "http://127.0.0.1:$ours_port/healthz"

# fill NAME URL: pushes the content and deletes half of the manifests; the result line goes
# to $work/NAME.filled.
fill() {
  local name=$1 url=$2; shift 2
  echo "filling $name…" >&2
  "$release/gc-bench" --url "$url" --password "$password" "$@" > "$work/$name.filled"
  cat "$work/$name.filled" >&2
}
fill distribution "http://127.0.0.1:$ref_port" "$@"
fill oci-storage "http://127.0.0.1:$ours_port" "$@"
cmp <(cut -d' ' -f1-4 "$work/distribution.filled") <(cut -d' ' -f1-4 "$work/oci-storage.filled")
expected=$(sed 's/.*unreferenced=\([0-9]*\).*/\1/' "$work/oci-storage.filled")
# Older than gc.delay (1 s) by the time oci-storage collects, whatever Distribution takes.
sleep 2

# Blobs on disk: Distribution keeps each in blobs/<alg>/<xx>/<hex>/data, oci-storage in
# blobs/<alg>/<hex>; digests() lists them as <alg>/<hex>. bytes: disk usage of a data directory.
digests_ref() { find "$ref/docker/registry/v2/blobs" -type f -name data | awk -F/ '{print $(NF-3) "/" $(NF-1)}' | sort; }
digests_ours() { find "$ours/blobs" -type f ! -name '.*' | awk -F/ '{print $(NF-1) "/" $NF}' | sort; }
count_ref() { digests_ref | wc -l; }
count_ours() { digests_ours | wc -l; }
# Objects in oci-storage's trash (not the marker each run writes in its own: `!moved`).
count_trash() { if [ -d "$ours/trash" ]; then find "$ours/trash" -type f ! -name '!*' | wc -l; else echo 0; fi; }
bytes() { du -s --block-size=1 "$1" | cut -f1; }

# timed LABEL CMD…: runs CMD (after a sync, so no writeback of the pushes is left), appends
# "LABEL start seconds peak-KiB" to $work/times, standard output to $work/LABEL.out, standard
# error to $work/LABEL.err, each line of it prefixed with the time it came (oci-storage's
# progress names each phase as it begins).
timed() {
  local label=$1 status=0; shift
  sync
  /usr/bin/time -f "$label $EPOCHREALTIME %e %M" -a -o "$work/times" "$@" >"$work/$label.out" \
    2> >(while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done >"$work/$label.err") \
    || status=$?
  wait $!
  [ "$status" = 0 ] || { echo "$label failed:" >&2; cat "$work/$label.err" >&2; exit 1; }
}

# Distribution collects only while the registry is stopped.
ref_pid=${pids[0]}
kill "$ref_pid"; wait "$ref_pid" 2>/dev/null || true
ref_before=$(count_ref) ref_bytes_before=$(bytes "$ref")
echo "Distribution: garbage-collect --delete-untagged ($ref_before blobs)…" >&2
timed ref-gc docker-registry garbage-collect --delete-untagged "$work/distribution.yml"
ref_after=$(count_ref) ref_bytes_after=$(bytes "$ref")

ours_before=$(count_ours) ours_bytes_before=$(bytes "$ours")
echo "oci-storage: gc, run 1 ($ours_before blobs; the server keeps serving)…" >&2
timed ours-gc-1 "$bin" gc --config "$work/ours.yml"
ours_after1=$(count_ours) trash_after1=$(count_trash) ours_bytes_after1=$(bytes "$ours")
sleep 1.5
echo "oci-storage: gc, run 2…" >&2
timed ours-gc-2 "$bin" gc --config "$work/ours.yml"
ours_after=$(count_ours) trash_after=$(count_trash) ours_bytes_after=$(bytes "$ours")
kill -0 "$ours_pid" || { echo "oci-storage stopped during the collection" >&2; exit 1; }
cat "$work/ours-gc-1.out" "$work/ours-gc-2.out" >&2

# Both keep exactly the same blobs.
if ! cmp -s <(digests_ref) <(digests_ours); then
  echo "Distribution and oci-storage kept different blobs:" >&2
  diff <(digests_ref) <(digests_ours) | head >&2
  exit 1
fi
ref_collected=$((ref_before - ref_after))
ours_collected=$((ours_before - ours_after))
if [ "$ref_before" != "$ours_before" ] || [ "$ref_collected" != "$ours_collected" ] \
   || [ "$ours_collected" != "$expected" ] || [ "$ours_collected" != "$((ours_before - ours_after1))" ] \
   || [ "$trash_after" != 0 ]; then
  echo "collected differently: Distribution $ref_before → $ref_after, oci-storage $ours_before →" \
    "$ours_after1 (run 1) → $ours_after (run 2, $trash_after left in the trash); expected $expected" >&2
  exit 1
fi

python3 - "$work" "$ref_before" "$ref_after" "$ours_before" "$ours_after1" "$trash_after1" \
  "$ours_after" "$ref_bytes_before" "$ref_bytes_after" "$ours_bytes_before" "$ours_bytes_after1" \
  "$ours_bytes_after" <<'PY'
import sys
work = sys.argv[1]
(ref_before, ref_after, ours_before, ours_after1, trash1, ours_after,
 rb0, rb1, ob0, ob1, ob2) = (int(a) for a in sys.argv[2:13])
times = {}
for line in open(f"{work}/times"):
    label, start, secs, kib = line.split()
    times[label] = (float(start), float(secs), int(kib))
filled = {n: dict(kv.split("=") for kv in open(f"{work}/{n}.filled").read().split())
          for n in ("distribution", "oci-storage")}
mib = 1024 * 1024

def phases(label):
    """How long each phase of an oci-storage run took, from the progress lines' times."""
    start, secs, _ = times[label]
    seen = [("start-up", start)]
    for line in open(f"{work}/{label}.err"):
        at, _, text = line.partition(" ")
        name = text.split("  ")[0].strip()
        if name and name != seen[-1][0]:
            seen.append((name, float(at)))
    seen.append(("end", start + secs))
    return ", ".join(f"{name} {b - a:.1f} s" for (name, a), (_, b) in zip(seen, seen[1:]))

f = filled["oci-storage"]
print(f"{int(f['blobs']):,} blobs in {int(f['manifests']):,} manifests; {int(f['deleted']):,} manifests"
      f" deleted by digest, leaving {int(f['unreferenced']):,} blobs unreferenced.")
d, o = filled["distribution"], filled["oci-storage"]
print(f"Push (POST + PUT per blob) and deletes: Distribution {d['push_s']} s + {d['delete_s']} s,"
      f" oci-storage {o['push_s']} s + {o['delete_s']} s.\n")
print("| run | wall time | peak RSS | blobs on disk before → after | disk usage MiB before → after |")
print("|---|---:|---:|---|---|")
def row(what, secs, kib, blobs, size):
    print(f"| {what} | {secs:.2f} s | {kib / 1024:.0f} MiB | {blobs} | {size} |")
_, secs, kib = times["ref-gc"]
row("Distribution `garbage-collect --delete-untagged` (registry stopped)", secs, kib,
    f"{ref_before:,} → {ref_after:,}", f"{rb0 / mib:,.0f} → {rb1 / mib:,.0f}")
_, s1, k1 = times["ours-gc-1"]
row("oci-storage `gc`, run 1: mark, move to the trash (server up)", s1, k1,
    f"{ours_before:,} → {ours_after1:,} (+{trash1:,} files in the trash)", f"{ob0 / mib:,.0f} → {ob1 / mib:,.0f}")
_, s2, k2 = times["ours-gc-2"]
row("oci-storage `gc`, run 2: mark again, empty the trash (server up)", s2, k2,
    f"{ours_after1:,} → {ours_after:,} (trash empty)", f"{ob1 / mib:,.0f} → {ob2 / mib:,.0f}")
row("oci-storage, both runs", s1 + s2, max(k1, k2), f"{ours_before:,} → {ours_after:,}",
    f"{ob0 / mib:,.0f} → {ob2 / mib:,.0f}")
print(f"\noci-storage run 1: {phases('ours-gc-1')}.")
print(f"oci-storage run 2: {phases('ours-gc-2')}.")
PY
