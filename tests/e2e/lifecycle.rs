//! The process around the protocol: crashes mid-upload, graceful shutdown with a transfer in
//! flight, memory while streaming large blobs, the generated initial admin, the command line,
//! and secrets kept out of the logs.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oci_storage_tests::{PASSWORD, Server, USER, eventually};
use reqwest::blocking::{Body, Client};
use sha2::Digest as _;

use crate::BIN;

const MIB: u64 = 1024 * 1024;
/// How long to wait for what trails the process: its log capture, a stream's progress.
const CATCH_UP: Duration = Duration::from_secs(20);

/// Deterministic content of any length, produced on the fly (never held whole in memory):
/// a 1 MiB pseudo-random block, varied per block by its index.
struct Generated {
    block: Arc<Vec<u8>>,
    pos: u64,
    len: u64,
    /// Sleep this long after each `pause_every` bytes (to stream slowly).
    pause: Duration,
    pause_every: u64,
    /// Bytes handed out so far, for observers.
    progress: Arc<AtomicU64>,
}

impl Generated {
    fn new(seed: u64, len: u64) -> Self {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut block = Vec::with_capacity(MIB as usize);
        while block.len() < MIB as usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block.extend_from_slice(&x.to_le_bytes());
        }
        Self {
            block: Arc::new(block),
            pos: 0,
            len,
            pause: Duration::ZERO,
            pause_every: u64::MAX,
            progress: Arc::default(),
        }
    }

    /// The same content from byte `start` on.
    fn from(mut self, start: u64) -> Self {
        self.pos = start;
        self
    }

    fn slowly(mut self, pause: Duration, every: u64) -> Self {
        self.pause = pause;
        self.pause_every = every;
        self
    }

    /// sha256 digest and length, computed by generating the content once.
    fn digest(seed: u64, len: u64) -> String {
        let mut hasher = sha2::Sha256::new();
        let mut reader = Self::new(seed, len);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let block_index = self.pos / MIB;
        let offset = (self.pos % MIB) as usize;
        let until_pause = self.pause_every - (self.pos % self.pause_every);
        let n = buf
            .len()
            .min(MIB as usize - offset)
            .min((self.len - self.pos) as usize)
            .min(until_pause.min(usize::MAX as u64) as usize);
        buf[..n].copy_from_slice(&self.block[offset..offset + n]);
        // The first 8 bytes of every block carry its index, so no two blocks are equal.
        let tag = block_index.to_le_bytes();
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = offset + i;
            if at < 8 {
                *b ^= tag[at];
            } else {
                break;
            }
        }
        self.pos += n as u64;
        self.progress.fetch_add(n as u64, Ordering::SeqCst);
        if self.pos.is_multiple_of(self.pause_every) && !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        Ok(n)
    }
}

/// Reads a whole response body in pieces, hashing it; answers (digest, length).
fn hash_body(
    mut body: impl Read,
    pause: Duration,
    progress: Option<mpsc::Sender<u64>>,
) -> (String, u64) {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if let Some(p) = &progress {
            let _ = p.send(total);
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    (format!("sha256:{}", hex::encode(hasher.finalize())), total)
}

fn authed(
    client: &Client,
    method: reqwest::Method,
    url: String,
) -> reqwest::blocking::RequestBuilder {
    client.request(method, url).basic_auth(USER, Some(PASSWORD))
}

/// Streams generated content into `repo` with `POST ?digest=`.
fn push_generated(server: &Server, repo: &str, seed: u64, len: u64) -> String {
    let digest = Generated::digest(seed, len);
    let resp = authed(
        &server.client(),
        reqwest::Method::POST,
        server.at(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")),
    )
    .header("content-type", "application/octet-stream")
    .body(Body::sized(Generated::new(seed, len), len))
    .send()
    .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
    digest
}

/// Files under `dir` that the registry can see (hidden names, which hold temporary files and
/// staged parts, excluded), relative to `dir`.
fn visible_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Hidden files an interrupted write leaves (temporary files, and the append file of a
/// multipart upload), with their sizes.
fn temp_files(dir: &Path) -> Vec<(String, u64)> {
    fn walk(dir: &Path, out: &mut Vec<(String, u64)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let in_multipart = path.to_string_lossy().contains("/.multipart/");
            if entry.file_type().unwrap().is_dir() {
                walk(&path, out);
            } else if name.starts_with(".tmp-") || (in_multipart && name == "data") {
                out.push((path.display().to_string(), entry.metadata().unwrap().len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// Streams `body` slowly with `method` to `path`, and kills the server with SIGKILL once
/// `after` bytes have gone out; then restarts it. Checks the request did not complete.
fn kill_while_streaming(
    server: &mut Server,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Generated,
    after: u64,
) {
    let total = body.len - body.pos;
    let temps_before = temp_files(&server.data_dir());
    let body = body.slowly(Duration::from_millis(20), 256 * 1024);
    let progress = body.progress.clone();
    let mut request = authed(
        &Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
        method,
        server.at(path),
    )
    .header("content-type", "application/octet-stream");
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let request = request.body(Body::sized(body, total));
    let streamer = std::thread::spawn(move || request.send().map(|r| r.status().as_u16()));
    eventually("part of the stream to be sent", CATCH_UP, || {
        progress.load(Ordering::SeqCst) > after
    });
    server.kill9();
    let outcome = streamer.join().unwrap();
    assert!(
        outcome.is_err(),
        "the interrupted request cannot have succeeded: {outcome:?}"
    );
    assert!(
        progress.load(Ordering::SeqCst) < total,
        "the stream was still running when the server died"
    );
    // The interrupted write left a partial temporary file behind: hidden, never served.
    let temps = temp_files(&server.data_dir());
    assert!(
        temps
            .iter()
            .any(|(path, size)| *size > 0
                && !temps_before.iter().any(|(p, s)| p == path && s >= size)),
        "a partial write was under way: {temps:?}"
    );
    server.restart();
}

#[test]
fn kill9_mid_upload_leaves_no_partial_blob() {
    let mut server = super::server();
    let seed = 77;
    let len = 48 * MIB;
    let first = MIB;
    let digest = Generated::digest(seed, len);

    let client = server.client();
    let resp = authed(
        &client,
        reqwest::Method::POST,
        server.at("/v2/crash/blobs/uploads/"),
    )
    .send()
    .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let mut first_part = Vec::new();
    Generated::new(seed, first)
        .read_to_end(&mut first_part)
        .unwrap();
    let resp = authed(&client, reqwest::Method::PATCH, server.at(&location))
        .header("content-range", format!("0-{}", first - 1))
        .body(first_part)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["range"], format!("0-{}", first - 1).as_str());

    // The rest in one PATCH, streamed slowly; the server dies in the middle of it.
    let rest = Generated::new(seed, len).from(first);
    let range = vec![("content-range", format!("{first}-{}", len - 1))];
    kill_while_streaming(
        &mut server,
        reqwest::Method::PATCH,
        &location,
        &range,
        rest,
        6 * MIB,
    );

    let check = |server: &Server| {
        let client = server.client();
        let resp = authed(
            &client,
            reqwest::Method::HEAD,
            server.at(&format!("/v2/crash/blobs/{digest}")),
        )
        .send()
        .unwrap();
        assert_eq!(resp.status(), 404);
        // The session knows only the chunk that was acknowledged.
        let resp = authed(&client, reqwest::Method::GET, server.at(&location))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert_eq!(resp.headers()["range"], format!("0-{}", first - 1).as_str());
        // Nothing partial is visible: no blob, no repository, only the session's own state.
        let catalog: serde_json::Value =
            authed(&client, reqwest::Method::GET, server.at("/v2/_catalog"))
                .send()
                .unwrap()
                .json()
                .unwrap();
        assert_eq!(catalog, serde_json::json!({ "repositories": [] }));
        assert_eq!(
            visible_files(&server.data_dir()),
            [format!("uploads/{id}/state.json")]
        );
    };
    check(&server);

    // A monolithic push of the same blob, killed the same way.
    let query = format!("/v2/crash/blobs/uploads/?digest={digest}");
    let whole = Generated::new(seed, len);
    kill_while_streaming(
        &mut server,
        reqwest::Method::POST,
        &query,
        &[],
        whole,
        6 * MIB,
    );
    check(&server);

    // A fresh, complete upload of the same blob works.
    assert_eq!(push_generated(&server, "crash", seed, len), digest);
    let client = server.client();
    let resp = authed(
        &client,
        reqwest::Method::GET,
        server.at(&format!("/v2/crash/blobs/{digest}")),
    )
    .send()
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(hash_body(resp, Duration::ZERO, None), (digest.clone(), len));

    // And the interrupted session can still be finished from where it stood (the server
    // recomputes the running hash it lost from what storage holds).
    let resp = authed(&client, reqwest::Method::PATCH, server.at(&location))
        .header("content-range", format!("{first}-{}", len - 1))
        .body(Body::sized(
            Generated::new(seed, len).from(first),
            len - first,
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().unwrap_or_default());
    let resp = authed(
        &client,
        reqwest::Method::PUT,
        server.at(&format!("{location}?digest={digest}")),
    )
    .send()
    .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
    let resp = authed(
        &client,
        reqwest::Method::HEAD,
        server.at(&format!("/v2/crash/blobs/{digest}")),
    )
    .send()
    .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn sigterm_lets_a_running_download_finish() {
    let mut server = super::server();
    let len = 64 * MIB;
    let digest = push_generated(&server, "drain", 5, len);
    let url = server.at(&format!("/v2/drain/blobs/{digest}"));
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let resp = authed(&client, reqwest::Method::GET, url).send().unwrap();
        assert_eq!(resp.status(), 200);
        // About 256 reads of 256 KiB, 10 ms apart: several seconds.
        hash_body(resp, Duration::from_millis(10), Some(tx))
    });
    // Shut down once the transfer is under way.
    let started = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(started < len);
    let clean = server.terminate();
    let (got, size) = reader.join().unwrap();
    assert!(clean, "the server must exit 0 after SIGTERM");
    assert_eq!(size, len);
    assert_eq!(got, digest);
    eventually("the shutdown to be logged", CATCH_UP, || {
        server.logs().contains("stopped")
    });
    assert!(server.logs().contains("shutting down"));
}

#[test]
fn large_blobs_stream_in_bounded_memory() {
    let server = super::server();
    let len = 256 * MIB;
    let client = server.client();

    // Monolithic push, streamed from a generator.
    let digest = push_generated(&server, "big/mono", 11, len);
    let resp = authed(
        &client,
        reqwest::Method::GET,
        server.at(&format!("/v2/big/mono/blobs/{digest}")),
    )
    .send()
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], len.to_string().as_str());
    assert_eq!(hash_body(resp, Duration::ZERO, None), (digest, len));

    // One PATCH of unknown length (chunked encoding), then PUT.
    let digest = Generated::digest(12, len);
    let resp = authed(
        &client,
        reqwest::Method::POST,
        server.at("/v2/big/chunked/blobs/uploads/"),
    )
    .send()
    .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = authed(&client, reqwest::Method::PATCH, server.at(&location))
        .header("content-type", "application/octet-stream")
        .body(Body::new(Generated::new(12, len)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = authed(
        &client,
        reqwest::Method::PUT,
        server.at(&format!("{location}?digest={digest}")),
    )
    .send()
    .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
    let resp = authed(
        &client,
        reqwest::Method::GET,
        server.at(&format!("/v2/big/chunked/blobs/{digest}")),
    )
    .send()
    .unwrap();
    assert_eq!(hash_body(resp, Duration::ZERO, None), (digest, len));

    let peak = server.peak_rss_kib();
    assert!(
        peak < 100 * 1024,
        "peak resident memory {peak} KiB while streaming 256 MiB blobs"
    );
}

/// The generated password printed on stderr at first start.
fn printed_password(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("with password"));
    lines.next()?;
    lines
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

#[test]
fn initial_admin_is_created_once() {
    let config = "storage:\n  type: fs\n  fs:\n    path: data\nauth:\n  users: []\n";
    let mut server = Server::start_with(BIN, config, &[]);
    eventually("the initial password on stderr", CATCH_UP, || {
        printed_password(&server.stderr()).is_some()
    });
    let password = printed_password(&server.stderr()).unwrap();
    assert!(password.len() >= 16, "a strong password: {password:?}");
    let first_stderr = server.stderr();
    assert_eq!(first_stderr.matches(&password).count(), 1, "{first_stderr}");

    let api = |server: &Server, user: &str, password: &str| {
        server
            .client()
            .get(server.at("/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(api(&server, "admin", &password), 200);
    assert_eq!(api(&server, "admin", "wrong"), 401);
    assert_eq!(api(&server, "admin", PASSWORD), 401);

    let record = std::fs::read_to_string(server.data_dir().join("system/initial-admin.json"))
        .expect("the initial admin record");
    assert!(record.contains("$argon2id$"), "{record}");
    assert!(
        !record.contains(&password),
        "the record must hold only a hash"
    );
    assert!(!server.logs().contains(&password), "never in the log");

    server.restart();
    assert_eq!(api(&server, "admin", &password), 200);
    assert_eq!(api(&server, "admin", "wrong"), 401);
    std::thread::sleep(Duration::from_millis(200));
    let all = server.stderr();
    let since_restart = all.strip_prefix(first_stderr.as_str()).unwrap_or(&all);
    assert!(
        !since_restart.contains("with password") && !since_restart.contains(&password),
        "no new password after a restart: {since_restart}"
    );
    assert!(!server.logs().contains(&password));
    let again =
        std::fs::read_to_string(server.data_dir().join("system/initial-admin.json")).unwrap();
    assert_eq!(again, record, "the record is kept as it was");
}

fn cli() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("OCI_STORAGE_CONFIG").env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("OCI_STORAGE__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn command_line() {
    let dir = tempfile::tempdir().unwrap();

    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/seed-config.yaml"
    );
    let out = cli()
        .args(["check-config", "--config", seed])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-config of the seed config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "server:\n  prot: 1\n").unwrap();
    let out = cli()
        .args(["check-config", "--config"])
        .arg(&bad)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.prot"),
        "names the key path: {stderr}"
    );
    let nested = dir.path().join("nested.yaml");
    std::fs::write(
        &nested,
        "auth:\n  users:\n    - username: a\n      pasword: b\n",
    )
    .unwrap();
    let out = cli()
        .args(["check-config", "--config"])
        .arg(&nested)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.users[0].pasword"));

    let out = cli().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("oci-storage {}", env!("CARGO_PKG_VERSION"))
    );

    // hash-password reads stdin and prints a hash that works as a configured password.
    let secret = "Hash-Me-4e1b";
    let mut child = cli()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(secret));

    let empty = cli()
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!empty.status.success(), "an empty password is refused");

    let config = format!(
        "storage:\n  type: fs\n  fs:\n    path: data\nauth:\n  users:\n    - username: hashed\n      password: '{hash}'\n"
    );
    let server = Server::start_with(BIN, &config, &[]);
    let status = |password: &str| {
        server
            .client()
            .get(server.at("/v2/"))
            .basic_auth("hashed", Some(password))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(status(secret), 200);
    assert_eq!(status("Hash-Me-4e1c"), 401);
    assert_eq!(status(&hash), 401, "the hash itself is not the password");
    assert!(
        !server.logs().contains("plaintext"),
        "a hashed password draws no plaintext warning"
    );
}

#[test]
fn passwords_never_reach_the_logs() {
    let mut server = Server::start_with(
        BIN,
        &oci_storage_tests::default_config(),
        &[("RUST_LOG", "trace")],
    );
    let client = server.client();
    let blob = b"log test blob";
    let digest = oci_storage_tests::sha256(blob);
    // Successful logins, for pulls and pushes.
    for _ in 0..3 {
        assert_eq!(
            authed(&client, reqwest::Method::GET, server.at("/v2/"))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    let resp = authed(
        &client,
        reqwest::Method::POST,
        server.at(&format!("/v2/logs/blobs/uploads/?digest={digest}")),
    )
    .body(blob.to_vec())
    .send()
    .unwrap();
    assert_eq!(resp.status(), 201);
    // Failed ones: a wrong password, and the right password for an unknown user.
    for (user, password) in [(USER, "not-the-password"), ("someone", PASSWORD)] {
        let resp = client
            .get(server.at("/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    assert!(server.terminate());
    eventually("the last log lines", CATCH_UP, || {
        server.logs().contains("stopped")
    });
    let logs = server.logs();
    let stderr = server.stderr();
    // The log is not empty: requests and the failed logins are in it.
    assert!(logs.contains("authentication failed"), "{logs}");
    assert!(logs.contains("/v2/logs/blobs/uploads/"), "{logs}");
    let encoded = crate::protocol::basic_auth_value(USER, PASSWORD);
    let encoded = encoded.trim_start_matches("Basic ");
    for secret in [PASSWORD, encoded] {
        assert!(!logs.contains(secret), "{secret:?} in stdout:\n{logs}");
        assert!(!stderr.contains(secret), "{secret:?} in stderr:\n{stderr}");
    }
}

/// A data directory written by an earlier version (nested `catalog/<repo>!` entries) keeps
/// its repositories in `_catalog`: they move to the flat layout in the background.
#[test]
fn legacy_catalog_entries_are_migrated() {
    let mut server = Server::start(BIN);
    server.terminate();
    let legacy = server.data_dir().join("catalog");
    for name in ["team/app", "team-b", "solo"] {
        let path = legacy.join(format!("{name}!"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
    }
    server.restart();
    let client = server.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    let catalog = loop {
        let body: serde_json::Value = client
            .get(server.at("/v2/_catalog"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if body["repositories"]
            .as_array()
            .is_some_and(|r| r.len() == 3)
            || Instant::now() > deadline
        {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["solo", "team-b", "team/app"])
    );
    assert!(
        !legacy.join("solo!").exists(),
        "legacy entries are removed once moved"
    );
}
