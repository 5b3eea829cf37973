//! Backup and restore when things go wrong or keep moving (docs/design/backup.md §1.3, §1.6,
//! §2, §6): what an incremental run really uploads, a `backup` or `restore` process killed
//! with SIGKILL midway and run again, snapshots taken while clients push and move tags, and
//! the backup target going away under a run (through a [`FaultProxy`] in front of SeaweedFS).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oci_storage_tests::fault_proxy::{Fault, FaultProxy};
use oci_storage_tests::object_stores::{S3_SECRET_KEY, SeaweedFs, aws_backup_yaml, unique_prefix};
use oci_storage_tests::{
    PASSWORD, Server, USER, XorShift, config_with_storage, eventually, layout, read, run_ok, sha256,
};
use reqwest::blocking::Client;
use serde_json::Value;

use super::{chart_index, check_restored, contents, creds, populate, snapshots};
use crate::BIN;
use crate::protocol::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, image_manifest, pseudo_random};
use crate::skopeo::skopeo;

const FS_STORAGE: &str = "storage:\n  type: fs\n  fs:\n    path: data\n";
/// Appended to a `backup:` section: a process killed mid-job blocks others for 5 s only.
const SHORT_LEASE: &str = "  leaseSeconds: 5\n";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// An fs registry's configuration with this `backup:` section.
fn fs_config(backup: &str) -> String {
    config_with_storage(FS_STORAGE) + backup
}

/// A `backup.aws` section for `bucket` on the shared SeaweedFS, reached through `proxy`.
fn aws_through(proxy: &FaultProxy, bucket: &str) -> String {
    let s3 = SeaweedFs::shared();
    let yaml = aws_backup_yaml(bucket, "b").replace(&s3.endpoint, proxy.endpoint());
    assert!(yaml.contains(proxy.endpoint()), "{yaml}");
    yaml
}

// ---------------------------------------------------------------------------------------
// Pushing over the Distribution API (monolithic uploads: fast, and sizes are exact).

/// A client pushing as the test user.
struct Pusher {
    client: Client,
    base: String,
}

impl Pusher {
    fn new(server: &Server) -> Self {
        Self {
            client: server.client(),
            base: server.url.clone(),
        }
    }

    /// Pushes a blob (`POST ?digest=` with the body); answers its digest.
    fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let resp = self
            .client
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={digest}",
                self.base
            ))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap();
        let status = resp.status();
        assert_eq!(
            status,
            201,
            "blob into {repo}: {}",
            resp.text().unwrap_or_default()
        );
        digest
    }

    /// Pushes a config unique to `label`; answers an image manifest over it and `layers`
    /// (already pushed: digest and size), not pushed yet.
    fn manifest_over(&self, repo: &str, label: &str, layers: &[(String, usize)]) -> Vec<u8> {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": { "image": label } },
        }))
        .unwrap();
        let config_digest = self.blob(repo, &config);
        let refs: Vec<(&str, &str, usize)> = layers
            .iter()
            .map(|(d, s)| (OCI_LAYER, d.as_str(), *s))
            .collect();
        image_manifest(OCI_CONFIG, &config_digest, config.len(), &refs)
    }

    /// PUTs a manifest by tag; it must be accepted.
    fn put_manifest(&self, repo: &str, tag: &str, manifest: &[u8]) {
        let resp = self
            .client
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.to_vec())
            .send()
            .unwrap();
        let status = resp.status();
        assert_eq!(
            status,
            201,
            "manifest {repo}:{tag}: {}",
            resp.text().unwrap_or_default()
        );
    }

    /// Pushes `layers`, a config unique to `label` and the manifest over them by each of
    /// `tags`; answers the manifest's digest.
    fn image(&self, repo: &str, label: &str, layers: &[Vec<u8>], tags: &[&str]) -> String {
        let refs: Vec<(String, usize)> = layers
            .iter()
            .map(|l| (self.blob(repo, l), l.len()))
            .collect();
        let manifest = self.manifest_over(repo, label, &refs);
        for tag in tags {
            self.put_manifest(repo, tag, &manifest);
        }
        sha256(&manifest)
    }
}

// ---------------------------------------------------------------------------------------
// Commands run in the background, to be killed midway.

/// An `oci-storage` command of a server's configuration running in the background, its
/// output going to files in the server's directory. Killed when dropped.
struct Background {
    child: Child,
    what: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn spawn(server: &Server, args: &[&str]) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stdout = server.scratch(&format!("{}-{n}.stdout", args.join("-")));
        let stderr = server.scratch(&format!("{}-{n}.stderr", args.join("-")));
        let child = server
            .cli_command(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("start oci-storage");
        Self {
            child,
            what: format!("oci-storage {}", args.join(" ")),
            stdout,
            stderr,
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What it printed so far (stdout, then stderr).
    fn output(&self) -> String {
        format!(
            "{}\n{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// SIGKILL. It must still be running: the test is about interrupting it.
    fn kill9(&mut self) {
        assert!(
            self.running(),
            "{} ended before it could be killed midway:\n{}",
            self.what,
            self.output()
        );
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "{status}");
    }

    /// Waits for it to end by itself; answers (status, stdout, stderr).
    fn wait(&mut self, within: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (
                    status,
                    std::fs::read_to_string(&self.stdout).unwrap(),
                    std::fs::read_to_string(&self.stderr).unwrap(),
                );
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not end within {within:?}:\n{}",
                    self.what,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until the job lease in the fs storage of `server` has expired, as a process killed
/// mid-job leaves it (`system/backup/lease.json`, `leaseSeconds: 5`).
fn wait_for_lease_expiry(server: &Server) {
    let path = server.data_dir().join("system/backup/lease.json");
    let lease: Value = serde_json::from_slice(&read(&path)).unwrap();
    let expires = lease["expiresAtMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("expiresAtMs in {lease}"));
    let now = now_ms();
    assert!(
        expires <= now + 5_000,
        "a lease of 5 s expires within 5 s: {lease}"
    );
    if expires >= now {
        thread::sleep(Duration::from_millis(expires - now + 100));
    }
}

/// A command that must fail because the lease of a killed job is still held.
fn assert_busy(server: &Server, args: &[&str]) {
    let out = server.cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains("another job is running"),
        "{args:?} while the killed job's lease holds: {stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// The bucket and the registries, inspected.

/// Key → size of the objects in `bucket` under `prefix`.
fn bucket_objects(bucket: &str, prefix: &str) -> BTreeMap<String, u64> {
    SeaweedFs::shared()
        .list_objects(bucket, prefix)
        .into_iter()
        .collect()
}

/// Objects of `after` that `before` did not have.
fn added(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn count_under(objects: &BTreeMap<String, u64>, prefix: &str) -> usize {
    objects.keys().filter(|k| k.starts_with(prefix)).count()
}

fn bytes_under(objects: &BTreeMap<String, u64>, prefix: &str) -> u64 {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

fn u64_of(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("a number: {value}"))
}

/// Every file under `dir` (recursively), but the hidden ones (temporary files of writes
/// under way).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out
}

/// Tag files under an fs registry's `repositories/` (`<repo>/_tags/<tag>`).
fn tag_files(data: &Path) -> usize {
    files_under(&data.join("repositories"))
        .iter()
        .filter(|p| {
            p.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "_tags")
        })
        .count()
}

/// Every content file of an fs registry (`blobs/sha256/<hex>`) hashes to its name: a killed
/// writer left no partial content.
fn content_is_whole(data: &Path) -> usize {
    let files = files_under(&data.join("blobs"));
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert_eq!(
            name.len(),
            64,
            "a content file named by its digest: {file:?}"
        );
        assert_eq!(
            sha256(&read(file)),
            format!("sha256:{name}"),
            "{file:?} holds partial or damaged content"
        );
    }
    files.len()
}

/// A GET's status, body and `Docker-Content-Digest`.
type Fetched = (u16, Vec<u8>, Option<String>);

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Every tag `server` serves resolves to a manifest whose whole tree (children of an index,
/// config, layers) is served and hashes right; answers (repository, tag) → manifest digest.
fn served_tags_complete(server: &Server) -> BTreeMap<(String, String), String> {
    let client = server.client();
    let get = |path: &str| -> Fetched {
        let resp = client
            .get(server.at(path))
            .basic_auth(USER, Some(PASSWORD))
            .header("accept", ACCEPT)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, resp.bytes().unwrap().to_vec(), digest)
    };
    let json = |path: &str| -> Value {
        let (status, body, _) = get(path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    };
    let mut out = BTreeMap::new();
    let catalog = json("/v2/_catalog?n=10000");
    for repo in catalog["repositories"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let repo = repo.as_str().unwrap().to_owned();
        let tags = json(&format!("/v2/{repo}/tags/list"));
        let mut checked = std::collections::BTreeSet::new();
        for tag in tags["tags"].as_array().cloned().unwrap_or_default() {
            let tag = tag.as_str().unwrap().to_owned();
            let (status, bytes, header) = get(&format!("/v2/{repo}/manifests/{tag}"));
            assert_eq!(status, 200, "{repo}:{tag} is listed but not served");
            let digest = sha256(&bytes);
            assert_eq!(header.as_deref(), Some(digest.as_str()), "{repo}:{tag}");
            check_tree(&get, &repo, &bytes, &mut checked, &format!("{repo}:{tag}"));
            out.insert((repo.clone(), tag), digest);
        }
    }
    out
}

/// A manifest's children (index) or config and layers are all served and hash right.
fn check_tree(
    get: &dyn Fn(&str) -> Fetched,
    repo: &str,
    manifest: &[u8],
    checked: &mut std::collections::BTreeSet<String>,
    what: &str,
) {
    let doc: Value = serde_json::from_slice(manifest)
        .unwrap_or_else(|e| panic!("{what}: the manifest is not JSON: {e}"));
    let descriptor = |d: &Value| {
        (
            d["digest"].as_str().unwrap().to_owned(),
            d["size"].as_u64().unwrap() as usize,
        )
    };
    if let Some(children) = doc["manifests"].as_array() {
        for child in children {
            let (digest, size) = descriptor(child);
            if !checked.insert(digest.clone()) {
                continue;
            }
            let (status, bytes, _) = get(&format!("/v2/{repo}/manifests/{digest}"));
            assert_eq!(status, 200, "{what}: child manifest {digest}");
            assert_eq!(bytes.len(), size, "{what}: child manifest {digest}");
            assert_eq!(sha256(&bytes), digest, "{what}: child manifest");
            check_tree(get, repo, &bytes, checked, what);
        }
        return;
    }
    let config = doc.get("config").into_iter();
    let layers = doc["layers"].as_array().into_iter().flatten();
    for blob in config.chain(layers) {
        let (digest, size) = descriptor(blob);
        if !checked.insert(digest.clone()) {
            continue;
        }
        let (status, bytes, _) = get(&format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(status, 200, "{what}: blob {digest}");
        assert_eq!(bytes.len(), size, "{what}: blob {digest}");
        assert_eq!(sha256(&bytes), digest, "{what}: blob");
    }
}

/// `2026-05-03T12:34:56Z` (a fraction, if any, is dropped) as a time.
fn parse_utc(s: &str) -> SystemTime {
    let rest = s
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("a UTC time: {s}"));
    let (date, time) = rest.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // Milliseconds (or any fraction), as the records write them.
    let nanos: u64 = format!("{fraction:0<9}")[..9].parse().unwrap();
    // Days since the epoch of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe - 719_468) as u64;
    UNIX_EPOCH
        + Duration::from_secs(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
        + Duration::from_nanos(nanos)
}

fn time_field(record: &Value, field: &str) -> SystemTime {
    parse_utc(
        record[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {record}")),
    )
}

// ---------------------------------------------------------------------------------------

/// A small registry backed up, then 8 MiB of new random layers: the second run adds those
/// 8 MiB and little else to the bucket, and its record's `newBytes` is what it added; a third
/// run with nothing new adds only its record.
#[test]
fn incremental_upload_is_what_changed() {
    oci_storage_tests::require_tool("skopeo");
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let source = Server::start_with(BIN, &fs_config(&aws_backup_yaml(&bucket, "b")), &[]);
    let src = source.scratch("layout");
    layout::single_image(&src, "v1", &[4096, 20_000]);
    run_ok(skopeo(&source).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/small/app:v1", source.host),
    ]));

    source.cli_ok(&["backup"]);
    let first = bucket_objects(&bucket, "b/");
    let records = snapshots(&source);
    assert_eq!(records.len(), 1);
    let record_key = |r: &Value| format!("b/snapshots/{}.json", r["id"].as_str().unwrap());
    // Everything the first run wrote but the target's marker and the record is new content
    // or documents.
    let marker = first["b/oci-storage-backup.json"];
    let record_size = first[&record_key(&records[0])];
    assert_eq!(
        u64_of(&records[0]["totals"]["newBytes"]),
        first.values().sum::<u64>() - marker - record_size,
        "{first:#?}\n{}",
        records[0]
    );

    let eight = 8 * MIB as u64;
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| pseudo_random(0x1ec2_0000 + i, 2 * MIB))
        .collect();
    Pusher::new(&source).image("big/data", "eight MiB", &layers, &["v1"]);

    source.cli_ok(&["backup"]);
    let second = bucket_objects(&bucket, "b/");
    let new = added(&first, &second);
    let new_bytes: u64 = new.values().sum();
    let records = snapshots(&source);
    assert_eq!(records.len(), 2);
    let record = &records[1];
    eprintln!(
        "8 MiB pushed: the second backup added {new_bytes} bytes in {} objects ({} over 8 MiB); record: {}",
        new.len(),
        new_bytes - eight.min(new_bytes),
        record["totals"]
    );
    assert!(
        new_bytes >= eight && new_bytes <= eight * 103 / 100 + 256 * KIB as u64,
        "8 MiB pushed, {new_bytes} bytes added to the bucket: {new:#?}"
    );
    // The four layers, the config and the manifest; the new repository's document (the
    // other one did not change, nor did the system document); the record.
    assert_eq!(count_under(&new, "b/blobs/"), 6, "{new:#?}");
    assert_eq!(count_under(&new, "b/meta/"), 1, "{new:#?}");
    assert_eq!(count_under(&new, "b/snapshots/"), 1, "{new:#?}");
    assert_eq!(new.len(), 8, "{new:#?}");
    assert!(new.contains_key(&record_key(record)), "{new:#?}");
    assert_eq!(
        u64_of(&record["totals"]["newBytes"]),
        new_bytes - new[&record_key(record)],
        "newBytes is what the run added to the bucket but its record: {new:#?}"
    );
    assert_eq!(u64_of(&record["totals"]["newObjects"]), 7, "{record}");
    assert_eq!(
        u64_of(&record["totals"]["bytes"]) - u64_of(&records[0]["totals"]["bytes"]),
        bytes_under(&new, "b/blobs/"),
        "the snapshot grew by the content uploaded"
    );

    source.cli_ok(&["backup"]);
    let third = bucket_objects(&bucket, "b/");
    let new = added(&second, &third);
    assert_eq!(new.len(), 1, "nothing new: only the record: {new:#?}");
    let records = snapshots(&source);
    assert_eq!(
        new.keys().next().unwrap(),
        &record_key(&records[2]),
        "{new:#?}"
    );
    assert_eq!(records[2]["totals"]["newBytes"], 0, "{}", records[2]);
    assert_eq!(records[2]["totals"]["newObjects"], 0, "{}", records[2]);
    assert_eq!(
        records[2]["totals"]["bytes"], records[1]["totals"]["bytes"],
        "{}",
        records[2]
    );
    assert_eq!(second.len() + 1, third.len());
}

/// 128 MiB in 32 blobs; the store is held (stalled) after 40 MiB and the `backup` process
/// killed with SIGKILL: no snapshot record, and nothing partial in `blobs/`. Once the dead
/// process's lease expired, the next run completes, uploading only what the first did not,
/// and the snapshot verifies.
#[test]
fn kill9_mid_backup_leaves_no_snapshot_and_the_next_completes() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let proxy = FaultProxy::in_front_of(&s3.endpoint);
    let source = Server::start_with(
        BIN,
        &fs_config(&(aws_through(&proxy, &bucket) + SHORT_LEASE)),
        &[],
    );
    let pusher = Pusher::new(&source);
    for i in 0..8u64 {
        let layers: Vec<Vec<u8>> = (0..4)
            .map(|j| pseudo_random(0xc0de_0000 + i * 4 + j, 4 * MIB))
            .collect();
        pusher.image(
            "bulk/app",
            &format!("image {i}"),
            &layers,
            &[&format!("v{i}")],
        );
    }

    let mut run = Background::spawn(&source, &["backup"]);
    eventually("the backup to send 40 MiB", Duration::from_secs(60), || {
        proxy.bytes_to_store() >= 40 * MIB as u64 || !run.running()
    });
    proxy.set(Fault::Stall);
    eventually("some blobs in the bucket", Duration::from_secs(20), || {
        !s3.list_keys(&bucket, "b/blobs/").is_empty()
    });
    let sent = proxy.bytes_to_store();
    run.kill9();
    let killed_at = Instant::now();
    assert!(
        s3.list_keys(&bucket, "b/snapshots/").is_empty(),
        "a killed run leaves no snapshot record"
    );
    // The dead process's lease keeps other jobs out until it expires.
    assert_busy(&source, &["backup"]);
    assert!(killed_at.elapsed() < Duration::from_secs(3));
    // The held traffic goes on (to a dead client): whatever it completes is whole.
    proxy.set(Fault::Pass);
    thread::sleep(Duration::from_millis(500));
    assert!(snapshots(&source).is_empty());
    let before = bucket_objects(&bucket, "b/");
    for key in before.keys().filter(|k| k.starts_with("b/blobs/")) {
        let hex = key.rsplit('/').next().unwrap();
        assert_eq!(
            sha256(&s3.get_object(&bucket, key)),
            format!("sha256:{hex}"),
            "{key} is partial or damaged"
        );
    }
    let uploaded = bytes_under(&before, "b/blobs/");
    eprintln!(
        "killed after {sent} bytes sent to the store; {uploaded} bytes of content in the bucket ({} objects), {} documents",
        count_under(&before, "b/blobs/"),
        count_under(&before, "b/meta/")
    );
    assert!(uploaded > 0 && uploaded < 128 * MIB as u64, "{before:#?}");

    wait_for_lease_expiry(&source);
    let out = source.cli_ok(&["backup"]);
    assert!(out.contains("snapshot "), "{out}");
    let after = bucket_objects(&bucket, "b/");
    let new = added(&before, &after);
    let records = snapshots(&source);
    assert_eq!(records.len(), 1, "{records:#?}");
    let totals = &records[0]["totals"];
    let total = u64_of(&totals["bytes"]);
    assert!(total >= 128 * MIB as u64, "{totals}");
    let new_bytes = u64_of(&totals["newBytes"]);
    eprintln!(
        "the next run: {new_bytes} new bytes of {total} (the killed run had uploaded {uploaded})"
    );
    assert!(new_bytes < total, "it reused what was uploaded: {totals}");
    // Exactly the content that was missing, the system document (the killed run had written
    // the repository document before copying), and the record.
    assert_eq!(
        bytes_under(&new, "b/blobs/"),
        total - uploaded,
        "the next run uploads exactly the missing content"
    );
    assert_eq!(count_under(&new, "b/meta/"), 1, "{new:#?}");
    let record_key = format!("b/snapshots/{}.json", records[0]["id"].as_str().unwrap());
    assert_eq!(
        new_bytes,
        new.values().sum::<u64>() - new[&record_key],
        "{new:#?}"
    );
    let out = source.cli_ok(&["backup", "verify", "--snapshot", "latest"]);
    assert!(out.contains("every digest right"), "{out}");
}

/// A `restore` killed with SIGKILL while it copies content, and again while it writes
/// repositories: every tag the destination serves then resolves completely (restore writes
/// in push order); a run while the dead one's lease holds is refused; a last run completes,
/// and the destination serves what the source does, to the same clients.
#[test]
fn kill9_mid_restore_then_again() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let backup = aws_backup_yaml(&bucket, "b") + SHORT_LEASE;
    let source = Server::start_with(BIN, &fs_config(&backup), &[]);
    let pushed = populate(&source);
    let pusher = Pusher::new(&source);
    // 64 MiB more in 16 repositories, and 64 small ones: each phase of a restore takes a
    // moment.
    for i in 0..16u64 {
        let layer = pseudo_random(0x5e5e_0000 + i, 4 * MIB);
        pusher.image(
            &format!("extra/big{i:02}"),
            "big",
            &[layer],
            &["v1", "latest"],
        );
    }
    for i in 0..64u64 {
        let layer = pseudo_random(0x5e5f_0000 + i, KIB);
        pusher.image(
            &format!("extra/small{i:02}"),
            "small",
            &[layer],
            &["v1", "latest"],
        );
    }
    source.cli_ok(&["backup"]);
    let expected = contents(&source);
    let expected_tags: BTreeMap<(String, String), String> = expected
        .iter()
        .map(|(r, t, d)| ((r.clone(), t.clone()), d.clone()))
        .collect();

    let mut dest = Server::prepare(BIN, &fs_config(&backup), &[]);
    let data = dest.data_dir();

    // 1. Killed while content is copied.
    let mut run = Background::spawn(&dest, &["restore"]);
    eventually(
        "the restore to store content",
        Duration::from_secs(60),
        || files_under(&data.join("blobs")).len() >= 8 || !run.running(),
    );
    run.kill9();
    // The dead process's lease keeps other jobs out until it expires.
    assert_busy(&dest, &["restore"]);
    let whole = content_is_whole(&data);
    dest.launch();
    let served = served_tags_complete(&dest);
    dest.kill9();
    eprintln!(
        "killed in the content phase: {whole} content files, all whole; {} tags served",
        served.len()
    );
    for (tag, digest) in &served {
        assert_eq!(expected_tags.get(tag), Some(digest), "{tag:?}");
    }

    // 2. Killed while repositories are written.
    wait_for_lease_expiry(&dest);
    let mut run = Background::spawn(&dest, &["restore"]);
    eventually("the restore to write tags", Duration::from_secs(60), || {
        tag_files(&data) >= 12 || !run.running()
    });
    run.kill9();
    assert_busy(&dest, &["restore"]);
    let written = tag_files(&data);
    content_is_whole(&data);
    dest.launch();
    let served = served_tags_complete(&dest);
    dest.kill9();
    eprintln!(
        "killed in the repositories phase: {written} tag files written, {} tags served (all complete) of {}",
        served.len(),
        expected.len()
    );
    assert!(!served.is_empty(), "tags were written before the kill");
    for (tag, digest) in &served {
        assert_eq!(
            expected_tags.get(tag),
            Some(digest),
            "{tag:?} as in the snapshot"
        );
    }

    // 3. To the end.
    wait_for_lease_expiry(&dest);
    let out = dest.cli_ok(&["restore"]);
    assert!(out.contains("restored snapshot"), "{out}");
    dest.launch();
    assert_eq!(contents(&dest), expected);
    assert_eq!(served_tags_complete(&dest), expected_tags);
    assert_eq!(chart_index(&dest), chart_index(&source));
    check_restored(&dest, &pushed);
}

/// A restore interrupted right after it wrote a chart's tag, before that chart's record
/// (`chartmeta/`), leaves what this test leaves by deleting the record after a full
/// restore. Running the restore again must complete it: "every step can be repeated"
/// (design §2.1), and `index.yaml` must list every chart version again.
#[test]
fn restore_again_rebuilds_chart_metadata_of_tags_already_written() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let backup = aws_backup_yaml(&bucket, "b") + SHORT_LEASE;
    let source = Server::start_with(BIN, &fs_config(&backup), &[]);
    populate(&source);
    source.cli_ok(&["backup"]);

    let mut dest = Server::prepare(BIN, &fs_config(&backup), &[]);
    dest.cli_ok(&["restore"]);
    let chart_record = dest.data_dir().join("chartmeta/charts/webapp/1.1.0.json");
    assert!(chart_record.is_file(), "{chart_record:?}");
    std::fs::remove_file(&chart_record).unwrap();
    let out = dest.cli_ok(&["restore"]);
    eprintln!("{out}");
    dest.launch();
    assert_eq!(
        chart_index(&dest),
        chart_index(&source),
        "a repeated restore restores the chart record of a tag it finds already written"
    );
}

/// One pushing client's acknowledged manifest PUT.
#[derive(Debug, Clone)]
struct Write {
    repo: String,
    tag: String,
    digest: String,
    sent: SystemTime,
    acked: SystemTime,
}

/// A client pushing images into a repository of its own until `stop`: a layer and config of
/// their own, then the manifest by a new tag `i<n>`, by `latest` (moved every time) and by
/// `m<n % 3>` (moved every third image).
fn push_continuously(server: &Server, index: u64, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Write>> {
    let pusher = Pusher::new(server);
    thread::spawn(move || {
        let repo = format!("load/client{index}");
        let mut rng = XorShift::new(index + 7);
        let mut writes = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let len = rng.range(16 * KIB as u64, 384 * KIB as u64) as usize;
            let layer = pseudo_random(((index + 1) << 32) | n, len);
            let refs = [(pusher.blob(&repo, &layer), len)];
            let manifest = pusher.manifest_over(&repo, &format!("client {index} image {n}"), &refs);
            let digest = sha256(&manifest);
            for tag in [format!("i{n}"), "latest".to_owned(), format!("m{}", n % 3)] {
                let sent = SystemTime::now();
                pusher.put_manifest(&repo, &tag, &manifest);
                writes.push(Write {
                    repo: repo.clone(),
                    tag,
                    digest: digest.clone(),
                    sent,
                    acked: SystemTime::now(),
                });
            }
            n += 1;
        }
        writes
    })
}

/// Checks a restored snapshot against the pushers' ledger: each restored tag names a
/// manifest pushed to it, sent before the cut ended and not older than the last one
/// acknowledged before the cut started; every tag acknowledged before the cut is there.
/// Answers the restored tags that were pushed after the record's `cutEndedAt` as written
/// (in its last millisecond), which the caller refuses.
fn check_against_ledger(
    record: &Value,
    restored: &BTreeMap<(String, String), String>,
    writes: &[Write],
) -> Vec<String> {
    let id = record["id"].as_str().unwrap();
    let cut_start = time_field(record, "cutStartedAt");
    let cut_end = time_field(record, "cutEndedAt");
    // The record's times are milliseconds: the cut ended before `cutEndedAt` + 1 ms.
    let cut_end_bound = cut_end + Duration::from_millis(1);
    let mut history: BTreeMap<(String, String), Vec<&Write>> = BTreeMap::new();
    for w in writes {
        history
            .entry((w.repo.clone(), w.tag.clone()))
            .or_default()
            .push(w);
    }
    let mut after_printed_end = Vec::new();
    for ((repo, tag), digest) in restored {
        let pushed = history
            .get(&(repo.clone(), tag.clone()))
            .unwrap_or_else(|| panic!("{id}: {repo}:{tag} was never pushed"));
        let k = pushed
            .iter()
            .position(|w| w.digest == *digest)
            .unwrap_or_else(|| {
                panic!("{id}: {repo}:{tag} restored as {digest}, never acknowledged for it")
            });
        assert!(
            pushed[k].sent < cut_end_bound,
            "{id}: {repo}:{tag} restored as {digest}, pushed after the cut ended ({record})"
        );
        if pushed[k].sent > cut_end {
            let ms = pushed[k].sent.duration_since(cut_end).unwrap().as_millis();
            after_printed_end.push(format!(
                "{repo}:{tag} {digest}, sent {ms} ms after {}",
                record["cutEndedAt"]
            ));
        }
        if let Some(next) = pushed.get(k + 1) {
            assert!(
                next.acked > cut_start,
                "{id}: {repo}:{tag} restored as {digest}, but {} was acknowledged for it before the cut started ({record})",
                next.digest
            );
        }
    }
    for ((repo, tag), pushed) in &history {
        if pushed[0].acked < cut_start {
            assert!(
                restored.contains_key(&(repo.clone(), tag.clone())),
                "{id}: {repo}:{tag}, acknowledged before the cut started, is not in the snapshot"
            );
        }
    }
    after_printed_end
}

/// Four clients push and move tags while two backups run; each snapshot, restored into a
/// fresh registry, is consistent: every tag resolves completely, and each is as it was at
/// one moment of the cut, by the clients' ledger.
#[test]
fn consistent_while_pushing() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let backup = aws_backup_yaml(&bucket, &unique_prefix());
    let source = Server::start_with(BIN, &fs_config(&backup), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..4)
        .map(|i| push_continuously(&source, i, stop.clone()))
        .collect();
    thread::sleep(Duration::from_millis(800));
    source.cli_ok(&["backup"]);
    thread::sleep(Duration::from_millis(500));
    source.cli_ok(&["backup"]);
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let writes: Vec<Write> = pushers
        .into_iter()
        .flat_map(|p| p.join().expect("a pushing client failed"))
        .collect();

    let records = snapshots(&source);
    assert_eq!(records.len(), 2, "{records:#?}");
    let mut late = Vec::new();
    for record in &records {
        let id = record["id"].as_str().unwrap();
        // Clients pushed while this backup ran.
        let started = time_field(record, "startedAt");
        let completed = time_field(record, "completedAt") + Duration::from_secs(1);
        let during = writes
            .iter()
            .filter(|w| w.sent >= started && w.acked <= completed)
            .count();
        assert!(during > 0, "{id}: no push acknowledged while it ran");

        let mut dest = Server::prepare(BIN, &fs_config(&backup), &[]);
        dest.cli_ok(&["restore", "--snapshot", id]);
        dest.launch();
        let restored = served_tags_complete(&dest);
        assert!(!restored.is_empty(), "{id}");
        let after_end = check_against_ledger(record, &restored, &writes);
        eprintln!(
            "{id}: cut {} .. {}; {} tags restored, all complete and consistent with the ledger; {during} pushes acknowledged while it ran; {} restored tags were pushed after cutEndedAt as written",
            record["cutStartedAt"],
            record["cutEndedAt"],
            restored.len(),
            after_end.len()
        );
        late.extend(after_end.into_iter().map(|l| format!("{id}: {l}")));
    }
    source.cli_ok(&["backup", "verify", "--snapshot", "latest"]);
    // The guarantee as documented (design §1.3, README): nothing pushed after `cutEndedAt` is
    // in the snapshot. The record's times must be precise enough to say so.
    assert!(
        late.is_empty(),
        "{} restored tags were pushed after their snapshot's cutEndedAt, e.g.:\n{}",
        late.len(),
        late.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The backup target goes away: from the start, and after the first MiBs of a run (of 64 MiB
/// in 16 blobs). The CLI
/// exits 1 with a message that names the target, leaves no snapshot record, and does not
/// hang; with the store back, the next run completes.
#[test]
fn store_outage_fails_the_backup_plainly() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let proxy = FaultProxy::in_front_of(&s3.endpoint);
    let source = Server::start_with(
        BIN,
        &fs_config(&(aws_through(&proxy, &bucket) + SHORT_LEASE)),
        &[],
    );
    let pusher = Pusher::new(&source);
    for i in 0..16u64 {
        let layer = pseudo_random(0x07a0_0000 + i, 4 * MIB);
        pusher.image(
            "outage/app",
            &format!("image {i}"),
            &[layer],
            &[&format!("v{i}")],
        );
    }
    let target = format!("s3:{bucket}/b");
    let plain = |stderr: &str, what: &str| {
        assert!(
            stderr.contains(&target),
            "{what}: the error names the target {target}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!stderr.contains(S3_SECRET_KEY), "{what}: {stderr}");
    };

    // Down from the start.
    proxy.set(Fault::Refuse);
    let clock = Instant::now();
    let out = source.cli(&["backup"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "store down from the start ({:?}): {stderr}",
        clock.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    plain(&stderr, "store down from the start");
    assert!(clock.elapsed() < Duration::from_secs(30));

    // Down after the first MiBs.
    proxy.set(Fault::Pass);
    let mut run = Background::spawn(&source, &["backup"]);
    eventually("the first MiBs sent", Duration::from_secs(30), || {
        proxy.bytes_to_store() >= 6 * MIB as u64 || !run.running()
    });
    assert!(run.running(), "{}", run.output());
    proxy.set(Fault::Refuse);
    let clock = Instant::now();
    let (status, _, stderr) = run.wait(Duration::from_secs(60));
    eprintln!(
        "store down midway: ended in {:?} after the outage: {stderr}",
        clock.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    plain(&stderr, "store down midway");
    assert!(
        s3.list_keys(&bucket, "b/snapshots/").is_empty(),
        "no record for a failed run"
    );

    // Back.
    proxy.set(Fault::Pass);
    assert!(snapshots(&source).is_empty());
    let out = source.cli_ok(&["backup"]);
    assert!(out.contains("snapshot "), "{out}");
    let records = snapshots(&source);
    assert_eq!(records.len(), 1);
    assert!(u64_of(&records[0]["totals"]["bytes"]) >= 64 * MIB as u64);
    source.cli_ok(&["backup", "verify", "--snapshot", "latest"]);
}
