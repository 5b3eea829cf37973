//! HTTPS with a self-signed certificate, as users set it up: skopeo trusting it through
//! `--cert-dir`, helm through `--ca-file`, and both refusing it when not told to trust it.

use std::path::Path;
use std::process::Command;

use oci_storage_tests::{
    PASSWORD, Server, USER, default_config, helm_env, layout, require_tool, run, run_ok,
};

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
pub(crate) fn certificates(dir: &Path) {
    require_tool("openssl");
    let in_dir = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    in_dir(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    in_dir(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    in_dir(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

#[test]
fn https_with_a_self_signed_certificate() {
    require_tool("skopeo");
    require_tool("helm");
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let config = format!(
        "{}server:\n  tls:\n    cert: {}\n    key: {}\n",
        default_config(),
        certs.path().join("server.crt").display(),
        certs.path().join("server.key").display()
    );
    let server = Server::start_with(super::BIN, &config, &[]);
    assert!(server.url.starts_with("https://"), "{}", server.url);

    // skopeo: a cert dir holding the CA certificate.
    let cert_dir = certs.path().join("certs.d");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(certs.path().join("ca.crt"), cert_dir.join("ca.crt")).unwrap();
    let auth = server.scratch("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let src = server.scratch("layout");
    let image = layout::single_image(&src, "v1", &[3000]);
    let dest = format!("docker://{}/secure/app:v1", server.host);
    let creds = format!("{USER}:{PASSWORD}");
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args([
                "copy",
                "--dest-cert-dir",
                cert_dir.to_str().unwrap(),
                "--dest-creds",
                &creds,
                &format!("oci:{}:v1", src.display()),
                &dest,
            ]),
    );
    let raw = run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args([
                "inspect",
                "--raw",
                "--cert-dir",
                cert_dir.to_str().unwrap(),
                "--creds",
                &creds,
                &dest,
            ]),
    );
    assert_eq!(
        oci_storage_tests::sha256(raw.as_bytes()),
        image.manifest.digest
    );
    let untrusted = run(Command::new("skopeo")
        .env("REGISTRY_AUTH_FILE", &auth)
        .args(["inspect", "--raw", "--creds", &creds, &dest]));
    assert!(
        !untrusted.status.success(),
        "an untrusted certificate is refused"
    );
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    // helm: --ca-file for login, push and pull. helm 4 here: helm 3 always talks plain HTTP
    // to loopback addresses for pushes and pulls (its login over HTTPS is checked).
    let home = server.scratch("helm");
    let ca = certs.path().join("ca.crt");
    let ca = ca.to_str().unwrap();
    run_ok(helm_env("helm", &home).args([
        "registry",
        "login",
        &server.host,
        "-u",
        USER,
        "-p",
        PASSWORD,
        "--ca-file",
        ca,
    ]));
    require_tool("helm4");
    run_ok(helm_env("helm4", &home).args(["create", "chart"]));
    run_ok(helm_env("helm4", &home).args(["package", "chart"]));
    run_ok(helm_env("helm4", &home).args([
        "registry",
        "login",
        &server.host,
        "-u",
        USER,
        "-p",
        PASSWORD,
        "--ca-file",
        ca,
    ]));
    let repo = format!("oci://{}/secure/charts", server.host);
    run_ok(helm_env("helm4", &home).args(["push", "chart-0.1.0.tgz", &repo, "--ca-file", ca]));
    std::fs::create_dir_all(home.join("out")).unwrap();
    run_ok(helm_env("helm4", &home).args([
        "pull",
        &format!("{repo}/chart"),
        "--version",
        "0.1.0",
        "--ca-file",
        ca,
        "-d",
        "out",
    ]));
    assert_eq!(
        std::fs::read(home.join("out/chart-0.1.0.tgz")).unwrap(),
        std::fs::read(home.join("chart-0.1.0.tgz")).unwrap()
    );
    let refused = run(helm_env("helm4", &home).args([
        "pull",
        &format!("{repo}/chart"),
        "--version",
        "0.1.0",
        "-d",
        "out",
    ]));
    assert!(
        !refused.status.success(),
        "helm refuses an untrusted certificate"
    );
}

#[test]
fn unusable_certificate_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("bad.key"), "not a key").unwrap();
    let config_file = dir.path().join("config.yaml");
    std::fs::write(
        &config_file,
        format!(
            "{}server:\n  port: 0\n  tls:\n    cert: {}\n    key: {}\n",
            default_config(),
            dir.path().join("bad.crt").display(),
            dir.path().join("bad.key").display()
        ),
    )
    .unwrap();
    let out = run(Command::new(super::BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config_file)
        .current_dir(dir.path()));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no certificate"), "{stderr}");
}

/// With TLS, `metrics.listen` serves `/metrics` over HTTPS with the same certificate, and
/// not in the clear.
#[test]
fn the_separate_metrics_listener_uses_tls_too() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let port = oci_storage_tests::object_stores::free_port();
    let config = format!(
        "{}server:\n  tls:\n    cert: {}\n    key: {}\nmetrics:\n  listen: 127.0.0.1:{port}\n",
        default_config(),
        certs.path().join("server.crt").display(),
        certs.path().join("server.key").display()
    );
    let _server = Server::start_with(super::BIN, &config, &[]);
    let ca = std::fs::read(certs.path().join("ca.crt")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let body = client
        .get(format!("https://127.0.0.1:{port}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(body.contains("process_cpu_seconds_total"), "{body}");
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"));
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no metrics in the clear"
    );
}
