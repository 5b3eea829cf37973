use super::*;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn embedded_default_matches_code_defaults() {
    let parsed = parse(DEFAULT_YAML, "embedded", no_env()).unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn seed_sample_loads() {
    let text = include_str!("../examples/seed-config.yaml");
    let c = parse(text, "seed", no_env()).unwrap();
    assert_eq!(c.server.port, 3030);
    assert_eq!(c.auth.users[0].username, "admin");
    assert_eq!(c.auth.users[0].password.expose(), "admin123");
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(c.backup.gcp.as_ref().unwrap()["projectID"], "my-project");
    assert_eq!(c.proxy.cache.max_size_gb, 10.0);
    assert_eq!(c.proxy.registries.len(), 2);
    assert_eq!(
        c.proxy.registries[0].resolved_url().as_deref(),
        Some("https://registry-1.docker.io")
    );
    assert_eq!(c.storage.kind, "fs");
}

#[test]
fn unknown_key_is_named() {
    let err = parse("server:\n  prot: 1\n", "f.yaml", no_env()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("server.prot") || msg.contains("prot"), "{msg}");
    assert!(msg.contains("f.yaml"), "{msg}");
    let err = parse(
        "auth:\n  users:\n    - username: a\n      pasword: b\n",
        "f",
        no_env(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("auth.users[0]"), "{err}");
}

#[test]
fn env_overrides() {
    let env = vec![
        ("OCI_STORAGE__SERVER__PORT".to_owned(), "8080".to_owned()),
        (
            "OCI_STORAGE__PROXY__CACHE__MAX_SIZE_GB".to_owned(),
            "2.5".to_owned(),
        ),
        (
            "OCI_STORAGE__STORAGE__FS__PATH".to_owned(),
            "/srv/x".to_owned(),
        ),
        (
            "OCI_STORAGE__AUTH__ANONYMOUS_PULL".to_owned(),
            "true".to_owned(),
        ),
        (
            "OCI_STORAGE__AUTH__USERS__0__USERNAME".to_owned(),
            "ci".to_owned(),
        ),
        (
            "OCI_STORAGE__AUTH__USERS__0__PASSWORD".to_owned(),
            "123".to_owned(),
        ),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let c = parse("", "f", env).unwrap();
    assert_eq!(c.server.port, 8080);
    assert_eq!(c.proxy.cache.max_size_gb, 2.5);
    assert_eq!(c.storage.selected_settings()["path"], "/srv/x");
    assert!(c.auth.anonymous_pull);
    assert_eq!(c.auth.users[0].username, "ci");
    assert_eq!(
        c.auth.users[0].password.expose(),
        "123",
        "numbers stay strings where strings are wanted"
    );
}

#[test]
fn env_typo_is_an_error() {
    let env = vec![("OCI_STORAGE__SERVER__PROT".to_owned(), "1".to_owned())];
    let err = parse("", "f", env).unwrap_err().to_string();
    assert!(err.contains("prot"), "{err}");
}

#[test]
fn secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\n").unwrap();
    let yaml = format!(
        "auth:\n  users:\n    - username: a\n      passwordFile: {}\n",
        file.display()
    );
    let c = parse(&yaml, "f", no_env()).unwrap();
    assert_eq!(c.auth.users[0].password.expose(), "s3cret");

    let env = vec![
        (
            "OCI_STORAGE__AUTH__USERS__0__USERNAME".to_owned(),
            "b".to_owned(),
        ),
        (
            "OCI_STORAGE__AUTH__USERS__0__PASSWORD_FILE".to_owned(),
            file.display().to_string(),
        ),
    ];
    let c = parse("", "f", env).unwrap();
    assert_eq!(c.auth.users[0].password.expose(), "s3cret");
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "Debug never shows secrets"
    );
}

#[test]
fn storage_plugin_secrets_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("id");
    let secret = dir.path().join("secret");
    std::fs::write(&id, "AKIDFROMFILE\n").unwrap();
    std::fs::write(&secret, "very-secret\n").unwrap();
    let yaml = format!(
        "storage:\n  type: s3\n  s3:\n    bucket: b\n    accessKeyIdFile: {}\n",
        id.display()
    );
    let env = vec![(
        "OCI_STORAGE__STORAGE__S3__SECRET_ACCESS_KEY_FILE".to_owned(),
        secret.display().to_string(),
    )];
    let c = parse(&yaml, "f", env).unwrap();
    let s3 = c.storage.selected_settings();
    assert_eq!(s3["accessKeyId"], "AKIDFROMFILE");
    assert_eq!(s3["secretAccessKey"], "very-secret");
    assert!(s3.get("secretAccessKeyFile").is_none());
    assert!(
        !format!("{c:?}").contains("very-secret"),
        "Debug never shows plugin secrets"
    );
}

#[test]
fn backup_schedule_is_an_interval_or_cron() {
    let c = parse("backup:\n  schedule: 24h\n", "f", no_env()).unwrap();
    assert_eq!(
        c.backup.schedule,
        Some(Schedule::Every(std::time::Duration::from_secs(86400)))
    );
    let c = parse("backup:\n  schedule: \"0 3 * * *\"\n", "f", no_env()).unwrap();
    assert_eq!(c.backup.schedule, Some(Schedule::Cron("0 3 * * *".into())));
    let c = parse("backup:\n  schedule: \"*/20 * * * * *\"\n", "f", no_env()).unwrap();
    assert!(matches!(c.backup.schedule, Some(Schedule::Cron(_))));
    for bad in ["every day", "1s", "61 * * * *"] {
        let err = parse(&format!("backup:\n  schedule: \"{bad}\"\n"), "f", no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("backup.schedule"), "{bad}: {err}");
    }
}

#[test]
fn backup_keep_and_bounds_are_checked() {
    let c = parse("backup:\n  keep: {last: 7, weekly: 8}\n", "f", no_env()).unwrap();
    assert_eq!(
        c.backup.keep,
        Some(Keep {
            last: 7,
            daily: 0,
            weekly: 8
        })
    );
    for (bad, key) in [
        ("keep: {last: 0}", "backup.keep"),
        ("keep: {hourly: 3}", "hourly"),
        ("concurrency: 0", "backup.concurrency"),
        ("concurrency: 65", "backup.concurrency"),
        ("leaseSeconds: 2", "backup.leaseSeconds"),
    ] {
        let err = parse(&format!("backup:\n  {bad}\n"), "f", no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{bad}: {err}");
    }
    let c = parse(
        "backup:\n  concurrency: 16\n  leaseSeconds: 5\n",
        "f",
        no_env(),
    )
    .unwrap();
    assert_eq!(c.backup.concurrency.get(), 16);
    assert_eq!(c.backup.lease_seconds.get().as_secs(), 5);
}

#[test]
fn backup_secrets_are_masked_in_debug_output() {
    let c = parse(
        "backup:\n  aws: {bucket: b, accessKeyId: AKIDVISIBLE, secretAccessKey: s3cr3t-value, sessionToken: t0ken-value}\n",
        "f",
        no_env(),
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cr3t-value") && !shown.contains("t0ken-value"),
        "{shown}"
    );
    assert!(shown.contains("bucket"), "{shown}");
}
