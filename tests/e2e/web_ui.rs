//! The web interface in a real headless Chromium (Debian's, driven by playwright-core from
//! `tests/ui`): the scripts there assert what a person would see and do. Screenshots of every
//! page go to `target/ui-screenshots/`.

use std::path::PathBuf;
use std::process::Command;

use oci_storage_tests::{PASSWORD, USER, layout, require_tool, run, run_ok};

use crate::helm_repo::{push_oci, push_oci_tagged, tgz};

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
    browser_script_with(script, base, &[]);
}

fn browser_script_with(script: &str, base: &str, env: &[(&str, &str)]) {
    require_tool("chromium");
    require_tool("node");
    assert!(
        ui_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run scripts/install-test-tools.sh"
    );
    let mut cmd = Command::new("node");
    cmd.arg(ui_dir().join(script))
        .env("BASE_URL", base)
        .env("UI_USER", USER)
        .env("UI_PASSWORD", PASSWORD)
        .env("SCREENSHOTS", screenshots());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
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
    let old = tgz(&[(
        "old/Chart.yaml",
        b"apiVersion: v2\nname: old\nversion: 1.0.0\ndeprecated: true\ndescription: superseded\n"
            .to_vec(),
    )]);
    let (status, body) = push_oci(&client, &server, "charts/old", &old);
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

fn webapp_chart(version: &str) -> Vec<u8> {
    let chart_yaml = format!(
        "apiVersion: v2\nname: webapp\nversion: {version}\nappVersion: \"1.25\"\ndescription: A small web application\nkeywords: [web, demo]\nhome: https://example.com/webapp\nmaintainers:\n  - name: Ada\n    email: ada@example.com\n"
    );
    tgz(&[
        ("webapp/Chart.yaml", chart_yaml.into_bytes()),
        (
            "webapp/values.yaml",
            b"# How many pods\nreplicaCount: 2\nimage:\n  repository: nginx # the image\n  tag: \"1.25\"\n".to_vec(),
        ),
        (
            "webapp/README.md",
            b"# Web application\n\nInstall it with **helm**.\n\n| key | default |\n|---|---|\n| replicaCount | 2 |\n".to_vec(),
        ),
        ("webapp/templates/deployment.yaml", b"kind: Deployment\n".to_vec()),
    ])
}

#[test]
fn chart_page_values_readme_copy_and_download() {
    let server = super::server();
    let client = server.client();
    let mut archives = Vec::new();
    for version in ["0.1.0", "0.2.0"] {
        let archive = webapp_chart(version);
        let (status, body) = push_oci_tagged(&client, &server, "charts/webapp", version, &archive);
        assert_eq!(status, 201, "{body}");
        archives.push(archive);
    }
    let chart_yaml = "apiVersion: v2\nname: hostile\nversion: 1.0.0\nhome: \"javascript:window.__pwned=5\"\nsources: [\"data:text/html,<script>window.__pwned=6</script>\"]\n";
    let readme = "# Hostile\n\n<script>window.__pwned=1</script>\n<img src=x onerror=\"window.__pwned=2\">\n<a href=\"#\" onclick=\"window.__pwned=3\">click</a>\n[js](javascript:window.__pwned=4)\n";
    let hostile = tgz(&[
        ("hostile/Chart.yaml", chart_yaml.as_bytes().to_vec()),
        ("hostile/README.md", readme.as_bytes().to_vec()),
    ]);
    let (status, body) = push_oci(&client, &server, "charts/hostile", &hostile);
    assert_eq!(status, 201, "{body}");

    let download = server.scratch("downloaded.tgz");
    browser_script_with(
        "chart.mjs",
        &server.url,
        &[("DOWNLOAD_TO", download.to_str().unwrap())],
    );
    assert!(
        std::fs::read(&download).unwrap() == archives[0],
        "the downloaded archive is the one pushed"
    );
    for shot in ["chart.png", "chart-phone.png"] {
        assert!(screenshots().join(shot).exists(), "{shot}");
    }
    // The deletion reached the registry: 0.1.0 is gone for clients, 0.2.0 stays.
    for (tag, status) in [("0.1.0", 404), ("0.2.0", 200)] {
        let resp = client
            .head(server.at(&format!("/v2/charts/webapp/manifests/{tag}")))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap();
        assert_eq!(resp.status(), status, "{tag}");
    }
}

/// A chart archive with these keywords.
fn chart_with_keywords(name: &str, keywords: &str) -> Vec<u8> {
    let chart_yaml =
        format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\nkeywords: [{keywords}]\n");
    tgz(&[(&format!("{name}/Chart.yaml"), chart_yaml.into_bytes())])
}

#[test]
fn many_repositories_paged_sorted_filtered_and_plotted() {
    use crate::protocol::{
        OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Reg, image_manifest, pseudo_random,
    };
    let reg = Reg::start();
    // 53 images sharing a config and a 10,000-byte layer, each with a layer of its own
    // (100 bytes more for each), so sizes order them and the total counts the shared once.
    let images = 53;
    let shared = pseudo_random(7, 10_000);
    let mut stored = 2 + shared.len();
    for i in 0..images {
        let repo = format!("bulk/repo-{i:02}");
        let config = reg.push_blob(&repo, b"{}");
        let shared_digest = reg.push_blob(&repo, &shared);
        let own = pseudo_random(100 + i as u64, 100 * (i + 1));
        let own_digest = reg.push_blob(&repo, &own);
        let manifest = image_manifest(
            OCI_CONFIG,
            &config,
            2,
            &[
                (OCI_LAYER, &shared_digest, shared.len()),
                (OCI_LAYER, &own_digest, own.len()),
            ],
        );
        reg.push_manifest(&repo, "v1", OCI_MANIFEST, &manifest);
        stored += manifest.len() + own.len();
    }
    let client = reg.server.client();
    for (repo, keywords) in [
        ("charts/postgres", "database, sql"),
        ("charts/mysql", "sql"),
    ] {
        let name = repo.rsplit('/').next().unwrap();
        let (status, body) = push_oci(
            &client,
            &reg.server,
            repo,
            &chart_with_keywords(name, keywords),
        );
        assert_eq!(status, 201, "{body}");
    }
    // The newest push, a second later than every other (push times have whole seconds).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, body) = push_oci(
        &client,
        &reg.server,
        "charts/redis",
        &chart_with_keywords("redis", "cache"),
    );
    assert_eq!(status, 201, "{body}");

    let expected_stored = format!("{:.1} KiB", stored as f64 / 1024.0);
    let repositories = (images + 3).to_string();
    browser_script_with(
        "browse.mjs",
        &reg.server.url,
        &[
            ("REPOSITORIES", &repositories),
            ("EXPECTED_STORED", &expected_stored),
            ("LARGEST", "bulk/repo-52"),
            ("NEWEST", "charts/redis"),
        ],
    );
    for shot in ["home-by-size.png", "home-keyword.png"] {
        assert!(screenshots().join(shot).exists(), "{shot}");
    }
}

/// A red square, as chart authors embed icons in Chart.yaml.
const SVG_ICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='48' height='48'%3E%3Crect width='48' height='48' fill='%23c33'/%3E%3C/svg%3E";

#[test]
fn visitors_and_read_only_users_and_accessibility() {
    let viewer = "viewer";
    let config = format!(
        "{}registry:\n  immutableTags: ['v*']\nauth:\n  users:\n    - {{username: {USER}, password: {PASSWORD}}}\n    - {{username: {viewer}, password: {PASSWORD}}}\n  rules:\n    - {{repositories: ['**'], actions: [pull, push, delete], users: [{USER}]}}\n    - {{repositories: ['**'], actions: [pull], users: [{viewer}]}}\n    - {{repositories: ['public/**'], actions: [pull], anonymous: true}}\n",
        oci_storage_tests::object_stores::Backend::from_env().fresh_storage_yaml()
    );
    let server = oci_storage_tests::Server::start_with(super::BIN, &config, &[]);
    let client = server.client();
    let public_chart = tgz(&[
        (
            "webapp/Chart.yaml",
            format!("apiVersion: v2\nname: webapp\nversion: 1.0.0\ndescription: A public chart\nkeywords: [web]\nicon: \"{SVG_ICON}\"\n").into_bytes(),
        ),
        ("webapp/values.yaml", b"# Pods\nreplicaCount: 1\n".to_vec()),
        ("webapp/README.md", b"# Webapp\n\nA *public* chart.\n".to_vec()),
    ]);
    let (status, body) = push_oci(&client, &server, "public/charts/webapp", &public_chart);
    assert_eq!(status, 201, "{body}");
    let secret = tgz(&[(
        "secret/Chart.yaml",
        b"apiVersion: v2\nname: secret\nversion: 1.0.0\nicon: \"javascript:alert(1)\"\n".to_vec(),
    )]);
    let (status, body) = push_oci(&client, &server, "private/charts/secret", &secret);
    assert_eq!(status, 201, "{body}");
    let reg = crate::protocol::Reg::with(server);
    reg.push_image("public/apps/web", "v1", b"public layer");
    reg.push_image("private/apps/img", "v1", b"private layer, a little larger");

    browser_script_with("access.mjs", &reg.server.url, &[("VIEWER", viewer)]);
    // Nothing the read-only user tried changed anything.
    for (manifest, status) in [
        ("private/charts/secret/manifests/1.0.0", 200),
        ("private/apps/img/manifests/v1", 200),
        ("private/apps/img/manifests/stolen", 404),
    ] {
        let resp = reg.head(&format!("/v2/{manifest}"));
        assert_eq!(resp.status(), status, "{manifest}");
    }
    let pages = [
        "/",
        "/?sort=size",
        "/ui/chart?repository=public%2Fcharts%2Fwebapp",
        "/ui/chart?repository=private%2Fcharts%2Fsecret",
        "/ui/image?repository=public%2Fapps%2Fweb",
        "/ui/proxy",
        "/ui/backups",
    ]
    .join(",");
    browser_script_with("a11y.mjs", &reg.server.url, &[("PAGES", &pages)]);
}

#[test]
fn image_page_platforms_layers_and_pull_command() {
    require_tool("skopeo");
    let server = super::server();
    let src = server.scratch("src");
    layout::multi_arch(&src, "multi", &["amd64", "arm64"]);
    let single = server.scratch("single");
    layout::single_image(&single, "single", &[1024, 2048]);
    let auth = server.scratch("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    for (layout_dir, tag, all) in [(&src, "multi", true), (&single, "single", false)] {
        let mut cmd = Command::new("skopeo");
        cmd.env("REGISTRY_AUTH_FILE", &auth).arg("copy");
        if all {
            cmd.arg("--all");
        }
        run_ok(
            cmd.args(["--dest-tls-verify=false", "--dest-creds", &creds])
                .arg(format!("oci:{}:{tag}", layout_dir.display()))
                .arg(format!("docker://{}/multi/arch:{tag}", server.host)),
        );
    }
    browser_script("image.mjs", &server.url);
    assert!(screenshots().join("image.png").exists());
    // The retag and the delete reached the registry: `stable` came and went, `multi` stays.
    let tags: serde_json::Value = server
        .client()
        .get(server.at("/v2/multi/arch/tags/list"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["multi", "single"]));
    assert!(
        server.logs().contains("path=/ui/tag/copy"),
        "the retag went through the UI"
    );
    // Without a tag named, the page opens the tag pushed last (not the lexically last).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let single = server
        .client()
        .get(server.at("/v2/multi/arch/manifests/single"))
        .basic_auth(USER, Some(PASSWORD))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    let content_type = single.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = single.bytes().unwrap();
    let put = server
        .client()
        .put(server.at("/v2/multi/arch/manifests/a-newest"))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", content_type)
        .body(bytes)
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);
    let session = crate::identity::web_login(&server, USER, PASSWORD);
    let page = server
        .client()
        .get(server.at("/ui/image?repository=multi%2Farch"))
        .header("cookie", session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(r#"<span class="version">a-newest</span>"#),
        "the newest tag is shown by default"
    );

    // The platforms, layers and history tables meet the accessibility checks too.
    browser_script_with(
        "a11y.mjs",
        &server.url,
        &[(
            "PAGES",
            "/ui/image?repository=multi%2Farch&tag=multi,/ui/image?repository=multi%2Farch&tag=single",
        )],
    );
}

#[test]
fn proxy_page_shows_usage_and_upstream_figures() {
    require_tool("skopeo");
    let upstream = oci_storage_tests::Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let auth = work.path().join("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let src = work.path().join("src");
    layout::single_image(&src, "v1", &[4096, 300_000]);
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(format!("docker://{}/library/app:v1", upstream.host)),
    );
    let config = format!(
        "{}proxy:\n  enabled: true\n  registries:\n    - name: docker.io\n      url: http://{}\n",
        oci_storage_tests::default_config(),
        upstream.host
    );
    let server = oci_storage_tests::Server::start_with(super::BIN, &config, &[]);
    let creds = format!("{USER}:{PASSWORD}");
    // Twice: the second pull's blobs come from the cache.
    for into in ["first", "second"] {
        run_ok(
            Command::new("skopeo")
                .env("REGISTRY_AUTH_FILE", &auth)
                .args(["copy", "--src-tls-verify=false", "--src-creds", &creds])
                .arg(format!(
                    "docker://{}/proxy/docker.io/library/app:v1",
                    server.host
                ))
                .arg(format!("oci:{}:v1", work.path().join(into).display())),
        );
    }
    browser_script("proxy.mjs", &server.url);
    assert!(screenshots().join("proxy.png").exists());
    // The cache is read-only through the REST API too (the page offers nothing: proxy.mjs).
    let client = server.client();
    let copy = client
        .post(server.at("/api/v1/tags/copy"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&serde_json::json!({
            "repository": "proxy/docker.io/library/app", "source": "v1", "target": "latest"
        }))
        .send()
        .unwrap();
    assert_eq!(copy.status(), 403);
    let delete = client
        .delete(server.at("/api/v1/tags?repository=proxy/docker.io/library/app&tag=v1"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(delete.status(), 403);
}

#[test]
fn cookies_are_secure_behind_a_proxy_that_terminates_tls() {
    let server = super::server();
    let login_cookie = |forwarded: Option<&str>| {
        let mut req = server.client().get(server.at("/ui/login"));
        if let Some(proto) = forwarded {
            req = req.header("X-Forwarded-Proto", proto);
        }
        let resp = req.send().unwrap();
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("ocis_login_csrf="))
            .unwrap()
    };
    assert!(!login_cookie(None).contains("Secure"), "plain HTTP");
    assert!(login_cookie(Some("https")).contains("Secure"));
    assert!(
        login_cookie(Some("https, http")).contains("Secure"),
        "the first hop counts"
    );
    assert!(!login_cookie(Some("http")).contains("Secure"));
}

#[test]
fn backup_page_button_progress_history_and_restore() {
    let s3 = oci_storage_tests::object_stores::SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let viewer = "viewer";
    // A slow link to SeaweedFS (16 MiB/s), so that the 96 MiB backup lasts long enough for
    // the page's polls to see it move, however loaded the machine is.
    let link = oci_storage_tests::fault_proxy::FaultProxy::in_front_of(&s3.endpoint);
    link.limit_to_store(16 * 1024 * 1024);
    let backup = oci_storage_tests::object_stores::aws_backup_yaml(&bucket, "ui")
        .replace(&s3.endpoint, link.endpoint());
    let config = format!(
        "storage: {{type: fs, fs: {{path: data}}}}\nauth:\n  users:\n    - {{username: {USER}, password: {PASSWORD}}}\n    - {{username: {viewer}, password: {PASSWORD}}}\n{backup}  concurrency: 1\n"
    );
    let server = oci_storage_tests::Server::start_with(super::BIN, &config, &[]);
    let reg = crate::protocol::Reg::with(server);
    let mut rng = oci_storage_tests::XorShift::new(7);
    const TAGS: usize = 24;
    for i in 0..TAGS {
        let layer = rng.bytes(4 * 1024 * 1024);
        reg.push_image("team/big", &format!("v{i}"), &layer);
    }
    browser_script_with(
        "backups.mjs",
        &reg.server.url,
        &[("VIEWER", viewer), ("TAGS", &TAGS.to_string())],
    );
    assert!(screenshots().join("backups.png").exists());
    let pages = format!(
        "/ui/backups,/ui/backups/restore?snapshot={}",
        reg.server
            .cli_ok(&["backup", "list", "--json"])
            .split("\"id\": \"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
    );
    browser_script_with("a11y.mjs", &reg.server.url, &[("PAGES", &pages)]);
}

/// The garbage collection page in the browser: dry run, collect now, history, and nothing
/// for others (tests/ui/gc.mjs).
#[test]
fn gc_page_dry_run_collect_and_history() {
    let viewer = "viewer";
    let config = format!(
        "storage: {{type: fs, fs: {{path: data}}}}\nauth:\n  users:\n    - {{username: {USER}, password: {PASSWORD}}}\n    - {{username: {viewer}, password: {PASSWORD}}}\ngc: {{delay: 1s, untagged: true}}\n"
    );
    let server = oci_storage_tests::Server::start_with(super::BIN, &config, &[]);
    let reg = crate::protocol::Reg::with(server);
    reg.push_image("team/app", "v1", b"kept layer");
    reg.push_image("team/old", "v1", b"an old layer");
    assert_eq!(reg.delete("/v2/team/old/manifests/v1").status(), 202);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    browser_script_with("gc.mjs", &reg.server.url, &[("VIEWER", viewer)]);
    assert!(screenshots().join("gc.png").exists());
    browser_script_with("a11y.mjs", &reg.server.url, &[("PAGES", "/ui/gc")]);
}
