//! helm 3 and helm 4 against the registry as users run them: package, login, push, pull,
//! show, template, version resolution by tag listing, nested repository paths.

use oci_storage_tests::{PASSWORD, Server, USER, helm_env, read, require_tool, run, run_ok};
use std::path::Path;

/// The helm binaries under test and whether `registry login` takes `--plain-http` (helm 4)
/// or `--insecure` (helm 3).
pub(crate) const HELMS: &[(&str, &str)] = &[("helm", "--insecure"), ("helm4", "--plain-http")];

pub(crate) fn login(
    helm: &str,
    flag: &str,
    home: &Path,
    server: &Server,
    password: &str,
) -> std::process::Output {
    let mut cmd = helm_env(helm, home);
    cmd.args([
        "registry",
        "login",
        &server.host,
        "-u",
        USER,
        "--password-stdin",
        flag,
    ]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("helm registry login");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn package(helm: &str, home: &Path, name: &str, version: &str) -> std::path::PathBuf {
    run_ok(helm_env(helm, home).args(["create", name]));
    let chart_yaml = home.join(name).join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).unwrap();
    let text = text.replace("version: 0.1.0", &format!("version: {version}"));
    std::fs::write(&chart_yaml, text).unwrap();
    run_ok(helm_env(helm, home).args(["package", name, "-d", "pkg"]));
    home.join("pkg").join(format!("{name}-{version}.tgz"))
}

/// `helm pull … -d dir` (helm needs the directory to exist).
fn pull(helm: &str, home: &Path, args: &[&str], dir: &str) {
    std::fs::create_dir_all(home.join(dir)).unwrap();
    let mut cmd = helm_env(helm, home);
    cmd.arg("pull").args(args).args(["--plain-http", "-d", dir]);
    run_ok(&mut cmd);
}

fn helm_cycle(helm: &str, login_flag: &str) {
    require_tool(helm);
    let server = super::server();
    let home = server.scratch(helm);
    let tgz = package(helm, &home, "mychart", "0.1.0");

    let bad = login(helm, login_flag, &home, &server, "not-the-password");
    assert!(
        !bad.status.success(),
        "{helm}: login with a wrong password must fail"
    );
    let good = login(helm, login_flag, &home, &server, PASSWORD);
    assert!(
        good.status.success(),
        "{helm} login: {}",
        String::from_utf8_lossy(&good.stderr)
    );

    let repo = format!("oci://{}/charts", server.host);
    let pushed =
        run(helm_env(helm, &home).args(["push", tgz.to_str().unwrap(), &repo, "--plain-http"]));
    let push_out = String::from_utf8_lossy(&pushed.stdout).into_owned()
        + &String::from_utf8_lossy(&pushed.stderr);
    assert!(pushed.status.success(), "{helm} push: {push_out}");
    assert!(push_out.contains("Digest: sha256:"), "{push_out}");

    // Pull gives back the very same archive.
    let chart = format!("{repo}/mychart");
    pull(helm, &home, &[&chart, "--version", "0.1.0"], "pulled");
    assert_eq!(read(&home.join("pulled/mychart-0.1.0.tgz")), read(&tgz));

    let values = run_ok(helm_env(helm, &home).args([
        "show",
        "values",
        &chart,
        "--version",
        "0.1.0",
        "--plain-http",
    ]));
    assert!(values.contains("replicaCount"), "{values}");
    let rendered = run_ok(helm_env(helm, &home).args([
        "template",
        "release-1",
        &chart,
        "--version",
        "0.1.0",
        "--plain-http",
    ]));
    assert!(rendered.contains("kind: Deployment"), "{rendered}");
    assert!(rendered.contains("release-1-mychart"), "{rendered}");

    // A newer version, and a version with build metadata ('+' is stored as '_' in the tag).
    let newer = package(helm, &home.join("v2"), "mychart", "0.2.0");
    run_ok(helm_env(helm, &home).args(["push", newer.to_str().unwrap(), &repo, "--plain-http"]));
    let build = package(helm, &home.join("v3"), "mychart", "0.3.0-rc.1+build.7");
    run_ok(helm_env(helm, &home).args(["push", build.to_str().unwrap(), &repo, "--plain-http"]));
    let tags: serde_json::Value = server
        .client()
        .get(server.at("/v2/charts/mychart/tags/list"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        tags["tags"],
        serde_json::json!(["0.1.0", "0.2.0", "0.3.0-rc.1_build.7"])
    );
    // Without --version helm lists the tags and takes the highest stable version.
    pull(helm, &home, &[&chart], "latest");
    assert!(home.join("latest/mychart-0.2.0.tgz").exists());
    pull(
        helm,
        &home,
        &[&chart, "--version", "0.3.0-rc.1+build.7"],
        "build",
    );
    assert_eq!(
        read(&home.join("build/mychart-0.3.0-rc.1+build.7.tgz")),
        read(&build)
    );
    pull(helm, &home, &[&chart, "--version", "~0.2"], "range");
    assert!(home.join("range/mychart-0.2.0.tgz").exists());

    // Nested repository paths.
    let nested = format!("oci://{}/team-a/platform/charts", server.host);
    run_ok(helm_env(helm, &home).args(["push", tgz.to_str().unwrap(), &nested, "--plain-http"]));
    pull(
        helm,
        &home,
        &[&format!("{nested}/mychart"), "--version", "0.1.0"],
        "nested",
    );
    assert_eq!(read(&home.join("nested/mychart-0.1.0.tgz")), read(&tgz));

    run_ok(helm_env(helm, &home).args(["registry", "logout", &server.host]));
    let logs = server.logs();
    assert!(
        !logs.contains(PASSWORD),
        "the password must never be logged"
    );
}

#[test]
fn helm3_push_pull_show_template() {
    let (helm, flag) = HELMS[0];
    helm_cycle(helm, flag);
}

#[test]
fn helm4_push_pull_show_template() {
    let (helm, flag) = HELMS[1];
    helm_cycle(helm, flag);
}

/// The quickstart of the README, command for command (with the test server's address).
#[test]
fn readme_quickstart_commands() {
    require_tool("helm");
    let server = super::server();
    let home = server.scratch("readme");
    let tgz = package("helm", &home, "mychart", "0.1.0");
    let host = server.host.clone();
    let out = login("helm", "--insecure", &home, &server, PASSWORD);
    assert!(out.status.success());
    run_ok(helm_env("helm", &home).args([
        "push",
        tgz.to_str().unwrap(),
        &format!("oci://{host}/charts"),
        "--plain-http",
    ]));
    run_ok(helm_env("helm", &home).args([
        "pull",
        &format!("oci://{host}/charts/mychart"),
        "--version",
        "0.1.0",
        "--plain-http",
    ]));
    assert!(home.join("mychart-0.1.0.tgz").exists());
    run_ok(helm_env("helm", &home).args([
        "show",
        "chart",
        &format!("oci://{host}/charts/mychart"),
        "--version",
        "0.1.0",
        "--plain-http",
    ]));
}
