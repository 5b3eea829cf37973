//! The black-box test harness: starts the real `oci-storage` binary on a loopback port with its
//! own data directory, captures its log, and offers the pieces tests need to drive it with real
//! clients (tool checks, isolated helm environments, OCI image layouts built at test time, real
//! object stores and a proxy that makes them fail).

pub mod bench;
pub mod fault_proxy;
pub mod layout;
pub mod object_stores;
pub mod prometheus;
pub mod tools;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use tools::{helm_env, require_tool, run, run_ok};

/// The user every test server is configured with.
pub const USER: &str = "admin";
/// That user's password (plaintext in the test config on purpose: it must never reach a log).
pub const PASSWORD: &str = "Test-Passw0rd-9f3e2a";

/// A running registry process.
#[derive(Debug)]
pub struct Server {
    bin: PathBuf,
    /// `127.0.0.1:PORT`
    pub host: String,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Scratch directory: `data/` is the storage root, `config.yaml` the configuration.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
}

/// The configuration tests start from: one user, and fresh storage of the backend chosen by
/// `OCI_STORAGE_TEST_BACKEND` (fs in the scratch directory unless told otherwise).
pub fn default_config() -> String {
    config_with_storage(&object_stores::Backend::from_env().fresh_storage_yaml())
}

/// A configuration of the given `storage:` section and the test user.
pub fn config_with_storage(storage_yaml: &str) -> String {
    format!("{storage_yaml}auth:\n  users:\n    - username: {USER}\n      password: {PASSWORD}\n")
}

impl Server {
    /// Starts the binary with [`default_config`].
    pub fn start(bin: &str) -> Self {
        Self::start_with(bin, &default_config(), &[])
    }

    /// Starts the binary with the given YAML configuration and extra environment.
    pub fn start_with(bin: &str, config_yaml: &str, env: &[(&str, &str)]) -> Self {
        let mut server = Self::prepare(bin, config_yaml, env);
        server.launch();
        server
    }

    /// A server's directory and configuration, not started yet (for commands that run
    /// before it, such as `restore`); [`Server::launch`] starts it.
    pub fn prepare(bin: &str, config_yaml: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("scratch directory");
        std::fs::write(dir.path().join("config.yaml"), config_yaml).expect("write config");
        Self {
            bin: PathBuf::from(bin),
            host: String::new(),
            url: String::new(),
            dir,
            child: None,
            stdout: Arc::default(),
            stderr: Arc::default(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Starts the process (after [`Server::prepare`], or again after it was stopped).
    pub fn launch(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .current_dir(self.dir.path())
            .env("OCI_STORAGE__SERVER__HOST", "127.0.0.1")
            .env("OCI_STORAGE__SERVER__PORT", "0")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start oci-storage");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        self.stdout.lock().unwrap().clear();
        capture(stdout, self.stdout.clone());
        capture(stderr, self.stderr.clone());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = self.stdout.lock().unwrap().clone();
            let line = logs.lines().find(|l| l.contains("listening on "));
            if let Some(addr) = line
                .and_then(|l| l.split("listening on ").nth(1))
                .map(|rest| {
                    // Text logs end the address with a space, JSON logs with a quote.
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
            {
                self.host = addr.to_owned();
                let scheme = if line.is_some_and(|l| l.contains("https")) {
                    "https"
                } else {
                    "http"
                };
                self.url = format!("{scheme}://{addr}");
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "oci-storage exited with {status} before listening:\n{}\n{}",
                    self.logs(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "oci-storage did not start:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `oci-storage <args> --config <this server's configuration>` in its directory,
    /// as an operator would next to the server, and waits for it.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_command(args).output().expect("run oci-storage")
    }

    /// The command [`Server::cli`] runs (`oci-storage <args> --config <this server's
    /// configuration>` in its directory), not started: to spawn it and, say, kill it midway.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Like [`Server::cli`], and it must succeed; answers its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "oci-storage {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything the server logged so far (stdout).
    pub fn logs(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes into an fs registry's storage the job lease of another process (`holder`,
    /// running a job of `kind` for the next minute), as a replica would; answers its path,
    /// for the test to remove it.
    pub fn hold_job_lease(&self, holder: &str, kind: &str) -> PathBuf {
        let lease = self.data_dir().join("system/backup/lease.json");
        let until = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 60_000;
        let record = serde_json::json!({
            "holder": holder, "job": "20261201T000000.000Z-abcdef", "kind": kind, "expiresAtMs": until,
        });
        std::fs::write(&lease, record.to_string()).expect("write the lease");
        lease
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts the process again over the same data directory (on a new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Peak resident memory of the process so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM")
    }

    /// Resident memory of the process now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        proc_status(self.pid(), field).unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// A blocking HTTP client (no redirects followed, so Location headers can be checked).
    pub fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(300))
            .build()
            .expect("http client")
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Path of a scratch file or directory under the server's directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn capture(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut buf = into.lock().unwrap();
            buf.push_str(&line);
            buf.push('\n');
        }
    });
}

/// Polls `condition` until it holds; fails the test, naming `what`, when it does not within
/// `within`.
#[track_caller]
pub fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// sha256 digest string of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// sha512 digest string of bytes.
pub fn sha512(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

/// Percent-encodes everything but the unreserved characters (RFC 3986), for a query value:
/// the canonical form, as signatures (SigV4) expect it.
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A small xorshift generator (the suite has no `rand`): the same sequence for the same seed,
/// so a test that draws from it can print its seed and be repeated.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next `len` bytes of the sequence: deterministic, incompressible-looking content.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// In `lo..hi` (the modulo bias is immaterial for test parameters).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A numeric field of `/proc/PID/status` (`VmRSS` and `VmHWM` in KiB, `Threads`), if the
/// process and the field exist.
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads a file to bytes, panicking with its path.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A CNCF Distribution (`docker-registry`) started for a test, anonymous, on loopback.
#[derive(Debug)]
pub struct Distribution {
    child: Option<Child>,
    pub host: String,
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl Distribution {
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// With `Some((user, password))`, the registry requires HTTP Basic auth (htpasswd, bcrypt).
    pub fn start_with_auth(basic: Option<(&str, &str)>) -> Self {
        require_tool("docker-registry");
        let dir = tempfile::tempdir().expect("scratch directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: info, accesslog: {{disabled: false}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, password)) = basic {
            require_tool("htpasswd");
            let file = dir.path().join("htpasswd");
            run_ok(
                Command::new("htpasswd")
                    .arg("-Bbc")
                    .arg(&file)
                    .args([user, password]),
            );
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                file.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        let log: Arc<Mutex<String>> = Arc::default();
        capture(child.stdout.take().unwrap(), log.clone());
        capture(child.stderr.take().unwrap(), log.clone());
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child: Some(child),
            host,
            dir,
            log,
        }
    }

    /// Its log (one access line per request).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops it (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}
