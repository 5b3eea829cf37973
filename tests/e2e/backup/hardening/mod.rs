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

mod incremental;
mod interrupted;
mod outage;
mod ownership;
mod under_load;

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
