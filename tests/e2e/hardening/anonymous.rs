//! With anonymous pull on, clients that have credentials still send them: `/v2/` challenges
//! callers without credentials, so pushes with skopeo, helm and an ORAS client (oras-py) work,
//! a wrong password fails at login, and anonymous pulls keep working without any.

use oci_storage_tests::layout;
use oci_storage_tests::{PASSWORD, Server, USER, helm_env, read, require_tool, run, run_ok};

fn anonymous_pull_server() -> Server {
    let config = format!(
        "{}  anonymousPull: true\n",
        oci_storage_tests::default_config()
    );
    Server::start_with(crate::BIN, &config, &[])
}

#[test]
fn skopeo_pushes_with_credentials_and_pulls_without_when_anonymous_pull_is_on() {
    let server = anonymous_pull_server();
    let resp = server.client().get(server.at("/v2/")).send().unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));

    let src = server.scratch("src");
    let image = layout::single_image(&src, "1.0", &[1024, 200_000]);
    let dest = format!("docker://{}/apps/web:1.0", server.host);
    run_ok(crate::skopeo::skopeo(&server).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("oci:{}:1.0", src.display()),
        &dest,
    ]));
    let raw = run_ok(crate::skopeo::skopeo(&server).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &dest,
    ]));
    assert_eq!(
        oci_storage_tests::sha256(raw.as_bytes()),
        image.manifest.digest
    );
    let copy = server.scratch("copy");
    run_ok(crate::skopeo::skopeo(&server).args([
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:1.0", copy.display()),
    ]));
    // Without credentials nothing can be pushed.
    let out = run(crate::skopeo::skopeo(&server).args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1.0", src.display()),
        &format!("docker://{}/apps/other:1.0", server.host),
    ]));
    assert!(!out.status.success());
}

#[test]
fn helm_logs_in_pushes_and_pulls_anonymously_when_anonymous_pull_is_on() {
    let server = anonymous_pull_server();
    for (helm, login_flag) in crate::helm::HELMS {
        require_tool(helm);
        let home = server.scratch(helm);
        let bad = crate::helm::login(helm, login_flag, &home, &server, "not-the-password");
        assert!(!bad.status.success(), "{helm}: a wrong password must fail");
        let good = crate::helm::login(helm, login_flag, &home, &server, PASSWORD);
        assert!(
            good.status.success(),
            "{helm}: {}",
            String::from_utf8_lossy(&good.stderr)
        );
        let name = format!("chart-{}", helm.replace("helm", "v"));
        let tgz = crate::helm::package(helm, &home, &name, "1.0.0");
        let repo = format!("oci://{}/charts", server.host);
        run_ok(helm_env(helm, &home).args(["push", tgz.to_str().unwrap(), &repo, "--plain-http"]));

        // Someone who never logged in pulls the same bytes.
        let stranger = server.scratch(&format!("{helm}-anonymous"));
        std::fs::create_dir_all(stranger.join("out")).unwrap();
        run_ok(helm_env(helm, &stranger).args([
            "pull",
            &format!("{repo}/{name}"),
            "--version",
            "1.0.0",
            "--plain-http",
            "-d",
            "out",
        ]));
        assert_eq!(
            read(&stranger.join(format!("out/{name}-1.0.0.tgz"))),
            read(&tgz)
        );
    }
}

#[test]
fn oras_pushes_with_credentials_and_pulls_without_when_anonymous_pull_is_on() {
    require_tool("python3");
    let server = anonymous_pull_server();
    let work = server.scratch("oras");
    std::fs::create_dir_all(&work).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/e2e/hardening/oras_client.py"
    );
    // HOME too: nothing of the client's may land in the real home directory.
    let out = run_ok(
        std::process::Command::new("python3")
            .env("HOME", &work)
            .args([script, &server.host, USER, PASSWORD, work.to_str().unwrap()]),
    );
    // The last line is the script's JSON (oras-py may print progress before it).
    let last = out.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(last).expect("the script's JSON");
    assert_eq!(result["push_status"], 201, "{result}");
    assert_eq!(result["pulled"], "pushed with oras\n", "{result}");
    let anonymous_push = server
        .client()
        .post(server.at("/v2/apps/notes/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(anonymous_push.status(), 401);
}
