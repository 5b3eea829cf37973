//! What operators see: health and readiness, log formats and warnings, the seed's sample
//! configuration as written.

use std::time::{Duration, Instant};

use oci_storage_tests::{PASSWORD, Server, USER, default_config};

fn get(server: &Server, path: &str) -> (u16, String) {
    let resp = server.client().get(server.at(path)).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().unwrap())
}

fn wait_for_log(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = server.logs();
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never logged:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn health_and_readiness_follow_storage() {
    let server = super::server();
    assert_eq!(get(&server, "/healthz"), (200, "ok".to_owned()));
    assert_eq!(get(&server, "/readyz"), (200, "ready".to_owned()));

    // Storage gone: still alive, no longer ready; back: ready again.
    let data = server.data_dir();
    let moved = server.scratch("moved-away");
    std::fs::rename(&data, &moved).unwrap();
    assert_eq!(get(&server, "/healthz").0, 200);
    assert_eq!(get(&server, "/readyz").0, 503);
    std::fs::rename(&moved, &data).unwrap();
    assert_eq!(get(&server, "/readyz").0, 200);
}

#[test]
fn json_logs_have_one_line_per_request() {
    let config = format!("{}logging:\n  format: json\n", default_config());
    let server = Server::start_with(super::BIN, &config, &[]);
    let resp = server
        .client()
        .get(server.at("/v2/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let logs = wait_for_log(&server, "\"/v2/\"");
    for line in logs.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    let access: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["path"] == "/v2/")
        .collect();
    assert_eq!(access.len(), 1, "one line per request: {access:?}");
    assert_eq!(access[0]["status"], 200);
    assert_eq!(access[0]["method"], "GET");
    assert_eq!(access[0]["user"], USER);
    assert!(!logs.contains(PASSWORD));
}

#[test]
fn plaintext_passwords_draw_a_warning() {
    let server = super::server();
    let logs = wait_for_log(&server, "plaintext");
    assert!(
        logs.contains("hash-password"),
        "the warning says what to do: {logs}"
    );
    assert!(!logs.contains(PASSWORD));
}

/// The seed's sample configuration, as written, with its plaintext `admin123`.
#[test]
fn seed_sample_configuration_runs() {
    let seed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/examples/seed-config.yaml"),
    )
    .unwrap();
    let server = Server::start_with(super::BIN, &seed, &[]);
    let logs = wait_for_log(&server, "proxy");
    assert!(
        logs.contains("backup"),
        "unimplemented sections are reported: {logs}"
    );
    let login = |password: &str| {
        server
            .client()
            .get(server.at("/v2/"))
            .basic_auth("admin", Some(password))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(login("admin123"), 200);
    assert_eq!(login("admin124"), 401);
    assert!(
        !server.data_dir().join("system/initial-admin.json").exists(),
        "with users configured, no initial admin is generated"
    );
}

/// The quickstart: no configuration file at all, storage under `./data`.
#[test]
fn embedded_default_configuration() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(super::BIN)
        .current_dir(dir.path())
        .env("OCI_STORAGE__SERVER__HOST", "127.0.0.1")
        .env("OCI_STORAGE__SERVER__PORT", "0")
        .env_remove("OCI_STORAGE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = lines.join("\n");
    assert!(log.contains("config=embedded default"), "{log}");
    assert!(
        log.contains(&format!(
            "storage=fs:{}",
            dir.path().join("data").canonicalize().unwrap().display()
        )),
        "{log}"
    );
    assert!(dir.path().join("data/system/initial-admin.json").exists());
}

/// `backup.*` picks and checks its target at startup (backups themselves are issue 13's next
/// steps): one target, built by its plugin, whose errors name the key.
#[test]
fn backup_targets_are_checked_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let with_backup = |backup: &str| format!("{}backup:\n{backup}", default_config());
    let server = Server::start_with(
        super::BIN,
        &with_backup("  enabled: true\n  target: {type: fs, path: backups}\n"),
        &[],
    );
    let logs = wait_for_log(&server, "backup: enabled");
    assert!(logs.contains("fs:"), "{logs}");
    drop(server);

    let refused = |backup: &str| {
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, with_backup(backup)).unwrap();
        let out = std::process::Command::new(super::BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{backup}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let typo = refused("  enabled: true\n  aws: {bucket: b, region: eu-west-1, bukcet: x}\n");
    assert!(typo.contains("backup.aws.bukcet"), "{typo}");
    let two = refused("  enabled: true\n  aws: {bucket: b}\n  gcp: {bucket: b}\n");
    assert!(two.contains("only one backup target"), "{two}");
    let untyped = refused("  enabled: true\n  target: {path: x}\n");
    assert!(untyped.contains("backup.target.type"), "{untyped}");
    let unknown = refused("  enabled: true\n  target: {type: b2}\n");
    assert!(
        unknown.contains("b2") && unknown.contains("fs, gcs, s3"),
        "{unknown}"
    );
}
