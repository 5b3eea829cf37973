//! The web interface in a real headless Chromium (Debian's, driven by playwright-core from
//! `tests/ui`): the scripts there assert what a person would see and do. Screenshots of every
//! page go to `target/ui-screenshots/`.

use std::path::PathBuf;
use std::process::Command;

use oci_storage_tests::{PASSWORD, USER, require_tool, run};

use crate::helm_repo::{push_oci, tgz};

fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/ui")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs one browser script against `base`; its output names every check.
fn browser_script(script: &str, base: &str) {
    require_tool("chromium");
    require_tool("node");
    assert!(
        ui_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run scripts/install-test-tools.sh"
    );
    let out = run(Command::new("node")
        .arg(ui_dir().join(script))
        .env("BASE_URL", base)
        .env("UI_USER", USER)
        .env("UI_PASSWORD", PASSWORD)
        .env("SCREENSHOTS", screenshots()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok: "), "{stdout}");
}

#[test]
fn home_page_login_search_escaping_and_csrf() {
    let server = super::server();
    let client = server.client();
    // A chart whose description tries to run script, and an image.
    let chart_yaml = "apiVersion: v2\nname: hostile\nversion: 1.0.0\ndescription: '<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">'\n";
    let archive = tgz(&[("hostile/Chart.yaml", chart_yaml.as_bytes().to_vec())]);
    let (status, body) = push_oci(&client, &server, "charts/hostile", &archive);
    assert_eq!(status, 201, "{body}");
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let digest = oci_storage_tests::sha256(config);
    let resp = client
        .post(server.at(&format!("/v2/apps/web/blobs/uploads/?digest={digest}")))
        .basic_auth(USER, Some(PASSWORD))
        .body(config.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let manifest = crate::protocol::image_manifest(
        "application/vnd.oci.image.config.v1+json",
        &digest,
        config.len(),
        &[],
    );
    let resp = client
        .put(server.at("/v2/apps/web/manifests/v1"))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);

    browser_script("home.mjs", &server.url);
    for shot in [
        "home-anonymous.png",
        "home.png",
        "search.png",
        "home-phone.png",
    ] {
        assert!(screenshots().join(shot).exists(), "{shot}");
    }
    assert!(!server.logs().contains(PASSWORD), "no password in the log");
}
