//! Garbage collection (issue 14) against the real binary: what it collects and keeps, bytes
//! on disk and in the bucket going down, the race between a run and a push under way, and a
//! soak of pushing and deleting clients while runs go on.

mod api;
mod replicas;
mod retention;
mod soak;

use std::path::Path;
use std::time::Duration;

use oci_storage_tests::object_stores::{
    FakeGcs, SeaweedFs, gcs_storage_yaml, s3_storage_yaml, unique_prefix,
};
use oci_storage_tests::{Server, config_with_storage, sha256};
use reqwest::Method;
use serde_json::{Value, json};

use crate::protocol::{
    OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Reg, artifact_manifest, image_manifest,
    pseudo_random,
};

const FS: &str = "storage:\n  type: fs\n  fs:\n    path: data\n";
/// Short enough for tests: content older than a second may be collected.
const GC: &str = "gc:\n  delay: 1s\n  untagged: true\n  leaseSeconds: 5\n";
const ACCEPT: &str =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                bytes_under(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// `oci-storage gc` (or `gc --dry-run`) as JSON-ish numbers from its summary line.
fn gc(server: &Server, dry_run: bool) -> String {
    let args: &[&str] = if dry_run {
        &["gc", "--dry-run"]
    } else {
        &["gc"]
    };
    let out = server.cli_ok(args);
    eprintln!("{out}");
    out
}

/// The number before `what` in a summary.
fn count(summary: &str, what: &str) -> u64 {
    let at = summary
        .find(what)
        .unwrap_or_else(|| panic!("{what:?} not in {summary}"));
    summary[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no number before {what:?} in {summary}"))
}

/// Every blob and child of the manifest `reference` is served and hashes right.
pub fn check_pullable(reg: &Reg, repo: &str, reference: &str) {
    let resp = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{repo}:{reference}");
    let bytes = resp.bytes().unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    if let Some(children) = doc["manifests"].as_array() {
        for child in children {
            check_pullable(reg, repo, child["digest"].as_str().unwrap());
        }
        return;
    }
    let blobs = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&doc["config"]]);
    for blob in blobs {
        let digest = blob["digest"].as_str().unwrap();
        let resp = reg.get(&format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(resp.status(), 200, "{repo}@{digest}");
        assert_eq!(sha256(&resp.bytes().unwrap()), digest, "{repo}@{digest}");
    }
}

/// Pushes an image with one layer of its own and answers (manifest bytes, digest).
fn image(reg: &Reg, repo: &str, tag: &str, seed: u64, size: usize) -> (Vec<u8>, String) {
    reg.push_image(repo, tag, &pseudo_random(seed, size))
}

/// What is collected and what is kept, on `reg`'s storage; `stored` measures the bytes the
/// storage holds (files on disk, objects in the bucket).
/// An image index of `children` (manifest bytes and digest), all linux/amd64.
fn index_of(children: &[(Vec<u8>, String)]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(b, d)| json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": b.len(),
            "platform": {"os": "linux", "architecture": "amd64"},
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn collects_and_keeps(reg: &Reg, stored: &dyn Fn() -> u64) {
    const MIB: usize = 1024 * 1024;
    // Kept: a tagged image, an index and its untagged children, a referrer of the image.
    let (a_bytes, a) = image(reg, "team/a", "v1", 1, MIB);
    let children: Vec<(Vec<u8>, String)> = (0..2)
        .map(|i| image(reg, "team/c", &format!("tmp{i}"), 10 + i, 300_000))
        .collect();
    for i in 0..2 {
        assert_eq!(
            reg.delete(&format!("/v2/team/c/manifests/tmp{i}")).status(),
            202
        );
    }
    let index = index_of(&children);
    reg.push_manifest("team/c", "v1", OCI_INDEX, &index);
    reg.push_blob("team/a", b"{}");
    let signature = artifact_manifest(
        Some("application/vnd.example.signature"),
        Some((a.as_str(), a_bytes.len())),
        None,
    );
    let sig = reg.push_manifest("team/a", &sha256(&signature), OCI_MANIFEST, &signature);
    // Collected: an image whose tag is deleted, and a blob no manifest ever referenced.
    let (_, b) = image(reg, "team/b", "v1", 2, 2 * MIB);
    let b_layer = sha256(&pseudo_random(2, 2 * MIB));
    assert_eq!(reg.delete("/v2/team/b/manifests/v1").status(), 202);
    let orphan = reg.push_blob("team/a", &pseudo_random(3, MIB));

    std::thread::sleep(Duration::from_millis(1100));
    let before = stored();
    let dry = gc(&reg.server, true);
    assert_eq!(
        stored(),
        before,
        "a dry run changes nothing (but its record)"
    );
    let run = gc(&reg.server, false);
    for what in ["manifests,", "blob links", "content objects ("] {
        assert_eq!(
            count(&dry, what),
            count(&run, what),
            "{what}: {dry} / {run}"
        );
    }
    assert_eq!(count(&run, "manifests,"), 1, "{run}");
    assert_eq!(
        count(&run, "blob links"),
        3,
        "b's layer and config, the orphan: {run}"
    );
    // b's manifest and layer, and the orphan (b's config is shared).
    assert_eq!(count(&run, "content objects ("), 3, "{run}");

    // Everything tagged still pulls, whole; the collected is gone.
    check_pullable(reg, "team/a", "v1");
    check_pullable(reg, "team/c", "v1");
    check_pullable(reg, "team/a", &sig);
    let referrers: Value = reg
        .get(&format!("/v2/team/a/referrers/{a}"))
        .json()
        .unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], sig.as_str());
    // The server learns of another process's deletes within registry.cacheSeconds (2 s).
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(reg.get(&format!("/v2/team/b/manifests/{b}")).status(), 404);
    assert_eq!(
        reg.get(&format!("/v2/team/b/blobs/{b_layer}")).status(),
        404
    );
    assert_eq!(reg.get(&format!("/v2/team/a/blobs/{orphan}")).status(), 404);

    // Freed once a later run, gc.delay on, empties the trash.
    let after_first = stored();
    std::thread::sleep(Duration::from_millis(1100));
    let second = gc(&reg.server, false);
    let freed = count(&second, "objects) from the trash");
    // b's manifest link, three blob links, three content objects.
    assert!(freed >= 7, "{second}");
    let after = stored();
    assert!(
        before - after >= 3 * MIB as u64 && after < after_first,
        "stored: {before} before, {after_first} after the first run, {after} after the second"
    );
    check_pullable(reg, "team/a", "v1");
    check_pullable(reg, "team/c", "v1");
}

#[test]
fn collects_on_fs_and_disk_usage_goes_down() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + GC),
        &[],
    ));
    let data = reg.server.data_dir();
    // Content, links and the trash; not `system/` (run records, the lease).
    collects_and_keeps(&reg, &|| {
        ["blobs", "repositories", "trash"]
            .iter()
            .map(|d| bytes_under(&data.join(d)))
            .sum()
    });
}

/// Bytes of content, links and the trash among a bucket's objects (not `system/`: run
/// records, the lease).
fn stored_in_bucket(objects: Vec<(String, u64)>) -> u64 {
    objects
        .iter()
        .filter(|(key, _)| !key.contains("system/"))
        .map(|(_, size)| size)
        .sum()
}

/// A registry on an object store, of this `storage:` section.
fn on_object_store(storage_yaml: &str) -> Reg {
    Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(storage_yaml) + GC),
        &[],
    ))
}

#[test]
fn collects_on_s3_and_the_bucket_shrinks() {
    let (s3, prefix) = (SeaweedFs::shared(), unique_prefix());
    let reg = on_object_store(&s3_storage_yaml(s3.test_bucket(), &prefix));
    collects_and_keeps(&reg, &|| {
        stored_in_bucket(s3.list_objects(s3.test_bucket(), &prefix))
    });
}

#[test]
fn collects_on_gcs_and_the_bucket_shrinks() {
    let (gcs, prefix) = (FakeGcs::shared(), unique_prefix());
    let reg = on_object_store(&gcs_storage_yaml(gcs.test_bucket(), &prefix));
    collects_and_keeps(&reg, &|| {
        stored_in_bucket(gcs.list_objects(gcs.test_bucket(), &prefix))
    });
}

/// A blob acknowledged before a run, its manifest after: the run collects the blob (old and
/// unreferenced when it looked), and the manifest still arrives whole — in the repository
/// that uploaded it, and in one that pushed the same content again (found stored, so not
/// written again).
#[test]
fn a_push_under_way_keeps_what_it_was_acknowledged() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + GC),
        &[],
    ));
    let layer = pseudo_random(7, 500_000);
    let config = reg.push_blob("race/one", b"{}");
    let digest = reg.push_blob("race/one", &layer);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        reg.head(&format!("/v2/race/one/blobs/{digest}")).status(),
        200
    );
    // The same content pushed to another repository: stored already, only linked.
    assert_eq!(reg.push_blob("race/two", &layer), digest);
    assert_eq!(reg.push_blob("race/two", b"{}"), config);
    std::thread::sleep(Duration::from_millis(1100));
    let run = gc(&reg.server, false);
    assert!(
        count(&run, "content objects (") >= 2,
        "collected under the pushes: {run}"
    );
    let manifest = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &digest, layer.len())]);
    for repo in ["race/one", "race/two"] {
        reg.push_manifest(repo, "v1", OCI_MANIFEST, &manifest);
        check_pullable(&reg, repo, "v1");
    }
    assert!(
        reg.server
            .logs()
            .contains("put back from the garbage collector's trash"),
        "{}",
        reg.server.logs()
    );
    // The restored content is in use now: the next runs keep it.
    std::thread::sleep(Duration::from_millis(1100));
    let run = gc(&reg.server, false);
    assert_eq!(count(&run, "content objects ("), 0, "{run}");
    std::thread::sleep(Duration::from_millis(1100));
    gc(&reg.server, false);
    check_pullable(&reg, "race/one", "v1");
    check_pullable(&reg, "race/two", "v1");
}

/// Without `gc.untagged`, untagged manifests (and what they reference) stay; one run at a
/// time: a run while another holds the lease is refused.
#[test]
fn untagged_manifests_stay_by_default_and_runs_do_not_overlap() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + "gc:\n  delay: 1s\n"),
        &[],
    ));
    let (_, digest) = image(&reg, "keep/app", "v1", 5, 100_000);
    assert_eq!(reg.delete("/v2/keep/app/manifests/v1").status(), 202);
    std::thread::sleep(Duration::from_millis(1100));
    let run = gc(&reg.server, false);
    assert_eq!(count(&run, "content objects ("), 0, "{run}");
    check_pullable(&reg, "keep/app", &digest);

    reg.server.hold_job_lease("replica-b/1/abcdef", "backup");
    let out = reg.server.cli(&["gc"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replica-b") && err.contains("backup"), "{err}");
    reg.server.cli_ok(&["gc", "--dry-run"]);
}

/// `gc.schedule`: the server collects by itself, and says so in its log and its metrics.
#[test]
fn scheduled_runs_collect_by_themselves() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + GC + "  schedule: \"*/2 * * * * *\"\n"),
        &[],
    ));
    assert!(
        reg.server.logs().contains("gc: scheduled"),
        "{}",
        reg.server.logs()
    );
    let (_, digest) = image(&reg, "sched/app", "v1", 9, 200_000);
    let layer = sha256(&pseudo_random(9, 200_000));
    assert_eq!(reg.delete("/v2/sched/app/manifests/v1").status(), 202);
    oci_storage_tests::eventually(
        "a scheduled run collects the layer",
        Duration::from_secs(20),
        || reg.get(&format!("/v2/sched/app/blobs/{layer}")).status() == 404,
    );
    oci_storage_tests::eventually("the run's log line", Duration::from_secs(10), || {
        reg.server.logs().contains("garbage collection finished")
    });
    let metrics = reg.get("/metrics").text().unwrap();
    let last = metrics
        .lines()
        .find_map(|l| l.strip_prefix("oci_storage_gc_last_success_timestamp_seconds "))
        .unwrap();
    assert!(last.parse::<f64>().unwrap() > 1.7e9, "{last}");
    assert_eq!(
        reg.get(&format!("/v2/sched/app/manifests/{digest}"))
            .status(),
        404
    );
}

/// A run that stopped after its sweep, before its recheck, leaves a kept manifest without a
/// blob's link and content (both in its trash): the next run puts them back before anything
/// else, even a dry run says so, and the image pulls again.
#[test]
fn a_later_run_heals_what_an_interrupted_one_left() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + GC),
        &[],
    ));
    let layer = pseudo_random(41, 100_000);
    image(&reg, "heal/app", "v1", 41, 100_000);
    let digest = sha256(&layer);
    let hex = &digest["sha256:".len()..];
    // What an interrupted run would have left: the layer's link and content in its trash.
    let data = reg.server.data_dir();
    let run = "20261201T000000.000Z-abcdef";
    for key in [
        format!("repositories/heal/app/_blobs/sha256/{hex}"),
        format!("blobs/sha256/{hex}"),
    ] {
        let to = data.join("trash").join(run).join(&key);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(data.join(&key), to).unwrap();
    }
    assert_eq!(
        reg.get(&format!("/v2/heal/app/blobs/{digest}")).status(),
        404
    );
    let dry = gc(&reg.server, true);
    assert!(dry.contains("would put back 2 object(s)"), "{dry}");
    assert_eq!(
        reg.get(&format!("/v2/heal/app/blobs/{digest}")).status(),
        404,
        "dry"
    );
    let run_out = gc(&reg.server, false);
    assert!(run_out.contains("\nput back 2 object(s)"), "{run_out}");
    assert_eq!(count(&run_out, "content objects ("), 0, "{run_out}");
    check_pullable(&reg, "heal/app", "v1");
}

/// With gc.untagged, per-platform manifests pushed by digest ahead of their index are
/// collected with their layers if a run comes between; the index that follows brings back
/// its children and what they need, and pulls whole.
#[test]
fn an_index_brings_back_its_collected_children() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + GC),
        &[],
    ));
    let config = reg.push_blob("multi/app", b"{}");
    let children: Vec<(Vec<u8>, String)> = (0..2)
        .map(|i| {
            let layer = pseudo_random(50 + i, 80_000);
            let digest = reg.push_blob("multi/app", &layer);
            let manifest =
                image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &digest, layer.len())]);
            let d = reg.push_manifest("multi/app", &sha256(&manifest), OCI_MANIFEST, &manifest);
            (manifest, d)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1100));
    let run = gc(&reg.server, false);
    assert_eq!(
        count(&run, "manifests,"),
        2,
        "the untagged children went: {run}"
    );
    let index = index_of(&children);
    reg.push_manifest("multi/app", "v1", OCI_INDEX, &index);
    check_pullable(&reg, "multi/app", "v1");
}
