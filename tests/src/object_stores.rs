//! Real object stores for tests: SeaweedFS (S3 API) and fake-gcs-server (GCS JSON API), each
//! started once per test process on loopback ports and killed when that process exits. Every
//! test gets a bucket of its own, so tests never see each other's objects.
//!
//! Blocking calls go through `curl` (not an HTTP client library) so this works from async
//! tests too.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::percent_encode;
use crate::tools::{require_tool, run_ok};

pub const S3_ACCESS_KEY: &str = "AKIDTEST";
pub const S3_SECRET_KEY: &str = "SECRETTEST";
pub const S3_REGION: &str = "us-east-1";
/// The one bucket of the test SeaweedFS that takes unsigned (anonymous) requests; created by
/// [`SeaweedFs::anonymous_bucket`].
pub const ANONYMOUS_BUCKET: &str = "anonymous-access";

/// Which storage backend an end-to-end test server uses (`OCI_STORAGE_TEST_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
    Gcs,
}

impl Backend {
    /// The backend chosen by `OCI_STORAGE_TEST_BACKEND` (`fs`, the default, `s3` or `gcs`).
    pub fn from_env() -> Self {
        match std::env::var("OCI_STORAGE_TEST_BACKEND").as_deref() {
            Ok("s3") => Self::S3,
            Ok("gcs") => Self::Gcs,
            Ok("fs") | Err(_) => Self::Fs,
            Ok(other) => panic!("OCI_STORAGE_TEST_BACKEND={other}: expected fs, s3 or gcs"),
        }
    }

    /// A `storage:` section for a fresh, empty store of this kind (fs: `data/` in the server's
    /// scratch directory; object stores: a new prefix in a bucket shared by the test process,
    /// as SeaweedFS gives each bucket volumes of its own and runs out after a few dozen).
    pub fn fresh_storage_yaml(self) -> String {
        match self {
            Self::Fs => "storage:\n  type: fs\n  fs:\n    path: data\n".to_owned(),
            Self::S3 => s3_storage_yaml(SeaweedFs::shared().test_bucket(), &unique_prefix()),
            Self::Gcs => gcs_storage_yaml(FakeGcs::shared().test_bucket(), &unique_prefix()),
        }
    }
}

/// A `storage:` section for the s3 plugin on the shared SeaweedFS.
pub fn s3_storage_yaml(bucket: &str, prefix: &str) -> String {
    let s3 = SeaweedFs::shared();
    format!(
        "storage:\n  type: s3\n  s3:\n    bucket: {bucket}\n    prefix: \"{prefix}\"\n    region: {S3_REGION}\n    endpoint: {}\n    forcePathStyle: true\n    accessKeyId: {S3_ACCESS_KEY}\n    secretAccessKey: {S3_SECRET_KEY}\n",
        s3.endpoint
    )
}

/// A `storage:` section for the gcs plugin on the shared fake-gcs-server.
pub fn gcs_storage_yaml(bucket: &str, prefix: &str) -> String {
    let gcs = FakeGcs::shared();
    format!(
        "storage:\n  type: gcs\n  gcs:\n    bucket: {bucket}\n    prefix: \"{prefix}\"\n    endpoint: {}\n    anonymous: true\n    projectId: test\n",
        gcs.endpoint
    )
}

/// A `backup:` section (`aws`, the S3 shape) for a bucket of the shared SeaweedFS.
pub fn aws_backup_yaml(bucket: &str, prefix: &str) -> String {
    let s3 = SeaweedFs::shared();
    format!(
        "backup:\n  enabled: true\n  aws:\n    bucket: {bucket}\n    prefix: \"{prefix}\"\n    region: {S3_REGION}\n    endpoint: {}\n    forcePathStyle: true\n    accessKeyId: {S3_ACCESS_KEY}\n    secretAccessKey: {S3_SECRET_KEY}\n",
        s3.endpoint
    )
}

/// A `backup:` section (`gcp`, the seed's GCS shape) for a bucket of the shared fake-gcs-server.
pub fn gcp_backup_yaml(bucket: &str, prefix: &str) -> String {
    let gcs = FakeGcs::shared();
    format!(
        "backup:\n  enabled: true\n  gcp:\n    bucket: {bucket}\n    prefix: \"{prefix}\"\n    endpoint: {}\n    anonymous: true\n    projectID: test\n",
        gcs.endpoint
    )
}

/// A prefix no other server of this test process uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn unique_bucket_name(kind: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Kills `child_pid` once this test process is gone (statics are never dropped), then
/// removes `dir`, the child's data, if given.
#[allow(clippy::zombie_processes)] // the watchdog outlives this process on purpose
fn kill_with_this_process(child_pid: u32, dir: Option<&std::path::Path>) {
    let remove = dir.map_or(String::new(), |d| {
        format!("; sleep 1; rm -rf '{}'", d.display())
    });
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {child_pid} 2>/dev/null{remove}",
        std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a watchdog");
}

/// Waits for `port` to accept connections; on timeout, fails with the end of `log` (if any)
/// so the reason is in the test output.
fn wait_for_port(port: u16, what: &str, log: Option<&std::path::Path>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            let tail = log
                .and_then(|l| std::fs::read_to_string(l).ok())
                .map(|text| {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(30)..].join("\n")
                })
                .unwrap_or_default();
            panic!("{what} did not start listening on {port} within 60 s; its log ends:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A SeaweedFS `weed mini` with the S3 gateway, static keys, all ports on loopback.
#[derive(Debug)]
pub struct SeaweedFs {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SeaweedFs {
    /// The process-wide instance, started on first use.
    pub fn shared() -> &'static SeaweedFs {
        static SHARED: OnceLock<SeaweedFs> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts SeaweedFS, again on other ports when one of those picked was taken meanwhile
    /// (the ports are free when picked, but parallel tests' connections may take one before
    /// SeaweedFS binds it).
    fn start() -> Self {
        for _ in 1..3 {
            if let Some(store) = Self::try_start() {
                return store;
            }
        }
        Self::try_start().expect("SeaweedFS started")
    }

    #[allow(clippy::zombie_processes)] // killed by its watchdog when this process exits
    fn try_start() -> Option<Self> {
        require_tool("weed");
        let dir = tempfile::tempdir().expect("scratch directory");
        let identities = format!(
            r#"{{"identities":[{{"name":"ci","credentials":[{{"accessKey":"{S3_ACCESS_KEY}","secretKey":"{S3_SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}},{{"name":"anonymous","actions":["Read:{ANONYMOUS_BUCKET}","Write:{ANONYMOUS_BUCKET}","List:{ANONYMOUS_BUCKET}"]}}]}}"#
        );
        let config = dir.path().join("s3.json");
        std::fs::write(&config, identities).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let s3_port = free_port();
        let mut cmd = Command::new("weed");
        cmd.arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.config={}", config.display()))
            .args(["-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0"])
            .args(["-s3.port.lance=0", "-debug.port=0", "-metricsPort=0"])
            .args(["-s3.metricsPort=0", "-s3.debug.port=0"])
            // Each bucket takes volumes of its own; by default their number follows the free
            // disk (free space / 128 MiB), so a nearly full disk left room for a dozen buckets
            // and writes to newer ones failed with InternalError. Volumes are sparse: tests
            // write little, so the count can be fixed well above what a run creates.
            .arg("-volume.max=1000")
            .arg(format!("-s3.port={s3_port}"));
        // Every other port explicitly too: the defaults are fixed numbers that would collide.
        // Distinct ports: two flags given the same one would keep SeaweedFS from starting.
        let mut taken = std::collections::HashSet::from([s3_port]);
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ] {
            let port = std::iter::repeat_with(free_port)
                .find(|p| taken.insert(*p))
                .expect("a free port");
            cmd.arg(format!("-{flag}={port}"));
        }
        let log = dir.path().join("weed.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start weed mini");
        kill_with_this_process(child.id(), Some(dir.path()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", s3_port)).is_err() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Port allocation failed") || Instant::now() >= deadline {
                eprintln!("SeaweedFS did not start on these ports, trying others:\n{text}");
                let _ = Command::new("kill")
                    .arg("-9")
                    .arg(child.id().to_string())
                    .status();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let store = Self {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            log,
            _dir: dir,
        };
        // The gateway accepts connections before the filer behind it is ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.try_create_bucket("ready-probe").is_err() {
            assert!(
                Instant::now() < deadline,
                "SeaweedFS S3 did not become ready"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        Some(store)
    }

    fn try_create_bucket(&self, name: &str) -> Result<(), String> {
        let out = signed_curl()
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .arg(format!("{}/{name}", self.endpoint))
            .output()
            .map_err(|e| e.to_string())?;
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        match code.as_str() {
            "200" | "409" => Ok(()),
            _ => Err(format!("creating bucket {name}: HTTP {code}")),
        }
    }

    /// The bucket shared by this test process (created on first use).
    pub fn test_bucket(&self) -> &str {
        static BUCKET: OnceLock<String> = OnceLock::new();
        BUCKET.get_or_init(|| self.new_bucket())
    }

    /// The bucket that anonymous requests may read, write and list (created on first use).
    pub fn anonymous_bucket(&self) -> &'static str {
        static CREATED: OnceLock<()> = OnceLock::new();
        CREATED.get_or_init(|| {
            self.try_create_bucket(ANONYMOUS_BUCKET)
                .expect("create the anonymous bucket")
        });
        ANONYMOUS_BUCKET
    }

    /// Creates a new, empty bucket and answers its name.
    pub fn new_bucket(&self) -> String {
        let name = unique_bucket_name("s3");
        self.try_create_bucket(&name).expect("create a bucket");
        name
    }

    /// The keys of every object in `bucket` under `prefix`, in order (all pages).
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.list_objects(bucket, prefix)
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// The key and size (`<Size>` in the listing) of every object in `bucket` under `prefix`,
    /// in key order (all pages).
    pub fn list_objects(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let mut objects: Vec<(String, u64)> = Vec::new();
        loop {
            // Parameters in canonical (sorted) order and encoded in canonical form: curl signs
            // the query as written.
            let mut url = format!(
                "{}/{bucket}?list-type=2&max-keys=1000&prefix={}",
                self.endpoint,
                percent_encode(prefix)
            );
            if let Some((last, _)) = objects.last() {
                url.push_str(&format!("&start-after={}", percent_encode(last)));
            }
            let xml = String::from_utf8(s3_get(&url)).expect("a UTF-8 listing");
            let element = |within: &str, name: &str| -> Option<String> {
                let start = within.find(&format!("<{name}>"))? + name.len() + 2;
                let end = within[start..].find(&format!("</{name}>"))? + start;
                Some(within[start..end].to_owned())
            };
            let page: Vec<(String, u64)> = xml
                .split("<Contents>")
                .skip(1)
                .map(|entry| {
                    let entry = entry.split("</Contents>").next().unwrap();
                    let key = element(entry, "Key").expect("<Key> in a listing entry");
                    let size = element(entry, "Size")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("no <Size> for {key} in the listing"));
                    (key, size)
                })
                .collect();
            let more = xml.contains("<IsTruncated>true</IsTruncated>") && !page.is_empty();
            objects.extend(page);
            if !more {
                return objects;
            }
        }
    }

    /// The bytes of the object `key` in `bucket`.
    pub fn get_object(&self, bucket: &str, key: &str) -> Vec<u8> {
        s3_get(&format!("{}/{bucket}/{key}", self.endpoint))
    }
}

/// `curl` signing its request for SeaweedFS with the test keys (SigV4).
fn signed_curl() -> Command {
    let mut curl = Command::new("curl");
    curl.args(["--aws-sigv4", &format!("aws:amz:{S3_REGION}:s3")])
        .args(["--user", &format!("{S3_ACCESS_KEY}:{S3_SECRET_KEY}")]);
    curl
}

/// A signed GET that must succeed; answers the body.
fn s3_get(url: &str) -> Vec<u8> {
    let out = signed_curl()
        .arg("-sf")
        .arg(url)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {url}: {out:?}");
    out.stdout
}

/// fake-gcs-server (the GCS JSON API) in memory.
#[derive(Debug)]
pub struct FakeGcs {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl FakeGcs {
    /// The process-wide instance, started on first use.
    pub fn shared() -> &'static FakeGcs {
        static SHARED: OnceLock<FakeGcs> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    #[allow(clippy::zombie_processes)] // killed by its watchdog when this process exits
    fn start() -> Self {
        require_tool("fake-gcs-server");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let child = Command::new("fake-gcs-server")
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-backend",
                "memory",
            ])
            .args(["-port", &port.to_string(), "-public-host", &host])
            .args([
                "-external-url",
                &format!("http://{host}"),
                "-log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-gcs-server");
        kill_with_this_process(child.id(), None);
        wait_for_port(port, "fake-gcs-server", None);
        Self {
            endpoint: format!("http://{host}"),
        }
    }

    /// The bucket shared by this test process (created on first use).
    pub fn test_bucket(&self) -> &str {
        static BUCKET: OnceLock<String> = OnceLock::new();
        BUCKET.get_or_init(|| self.new_bucket())
    }

    /// Name and size of every object in `bucket` whose name starts with `prefix`.
    pub fn list_objects(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let client = reqwest::blocking::Client::new();
        let mut objects = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("prefix", prefix.to_owned())];
            if let Some(token) = &page_token {
                query.push(("pageToken", token.clone()));
            }
            let page: serde_json::Value = client
                .get(format!("{}/storage/v1/b/{bucket}/o", self.endpoint))
                .query(&query)
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.json())
                .expect("list objects of fake-gcs-server");
            for item in page["items"].as_array().into_iter().flatten() {
                let size = match &item["size"] {
                    serde_json::Value::String(s) => s.parse().unwrap_or(0),
                    other => other.as_u64().unwrap_or(0),
                };
                objects.push((item["name"].as_str().unwrap_or_default().to_owned(), size));
            }
            match page["nextPageToken"].as_str() {
                Some(token) if !token.is_empty() => page_token = Some(token.to_owned()),
                _ => return objects,
            }
        }
    }

    /// Creates a new, empty bucket and answers its name.
    pub fn new_bucket(&self) -> String {
        let name = unique_bucket_name("gcs");
        run_ok(
            Command::new("curl")
                .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json"])
                .arg(format!("{}/storage/v1/b?project=test", self.endpoint))
                .args(["-d", &format!(r#"{{"name":"{name}"}}"#)]),
        );
        name
    }
}
