//! Identity sources with real clients: users from an Apache htpasswd file (bcrypt, as
//! `htpasswd -B` writes it) logging in with helm and skopeo (credentials and an auth file),
//! the file re-read when it changes, and groups given to htpasswd users by configuration.

use std::process::Command;

use oci_storage_tests::{Server, helm_env, layout, require_tool, run, run_ok};

fn status(server: &Server, user: &str, password: &str) -> u16 {
    server
        .client()
        .get(server.at("/v2/"))
        .basic_auth(user, Some(password))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn htpasswd_users_with_helm_skopeo_and_reload() {
    require_tool("htpasswd");
    require_tool("helm");
    require_tool("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    // -c create, -B bcrypt, -b password on the command line.
    run_ok(
        Command::new("htpasswd")
            .arg("-cBb")
            .arg(&file)
            .args(["alice", "alice-pw-1"]),
    );
    let config = format!(
        r#"storage: {{type: fs, fs: {{path: data}}}}
auth:
  providers:
    - {{type: htpasswd, path: {}}}
  groups:
    writers: [alice, carol]
  rules:
    - {{repositories: ["**"], actions: [pull, push], groups: [writers]}}
    - {{repositories: ["**"], actions: [pull], users: [bob]}}
"#,
        file.display()
    );
    let server = Server::start_with(super::BIN, &config, &[]);
    assert!(
        !server.stderr().contains("with password"),
        "an htpasswd source means no generated admin"
    );
    assert_eq!(status(&server, "alice", "alice-pw-1"), 200);
    assert_eq!(status(&server, "alice", "wrong"), 401);
    assert_eq!(status(&server, "bob", "bob-pw-1"), 401);

    // helm: login and push as the htpasswd user (push granted through the configured group).
    let home = server.scratch("helm");
    run_ok(helm_env("helm", &home).args(["create", "chart"]));
    run_ok(helm_env("helm", &home).args(["package", "chart"]));
    let mut login = helm_env("helm", &home);
    login.args([
        "registry",
        "login",
        &server.host,
        "-u",
        "alice",
        "-p",
        "alice-pw-1",
        "--insecure",
    ]);
    run_ok(&mut login);
    run_ok(helm_env("helm", &home).args([
        "push",
        "chart-0.1.0.tgz",
        &format!("oci://{}/htpasswd/charts", server.host),
        "--plain-http",
    ]));

    // skopeo: an auth file written by `skopeo login`, then --authfile.
    let auth = server.scratch("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    run_ok(Command::new("skopeo").args([
        "login",
        "--tls-verify=false",
        "--authfile",
        auth.to_str().unwrap(),
        "-u",
        "alice",
        "-p",
        "alice-pw-1",
        &server.host,
    ]));
    let src = server.scratch("layout");
    layout::single_image(&src, "v1", &[1000, 2000]);
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        "--authfile",
        auth.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/htpasswd/image:v1", server.host),
    ]));

    // Users added to the file work at once, without a restart.
    run_ok(
        Command::new("htpasswd")
            .arg("-Bb")
            .arg(&file)
            .args(["bob", "bob-pw-1"]),
    );
    assert_eq!(status(&server, "bob", "bob-pw-1"), 200);
    let pulled = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "bob:bob-pw-1",
        &format!("docker://{}/htpasswd/image:v1", server.host),
    ]));
    assert!(pulled.status.success(), "bob may pull");
    let pushed = run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:bob-pw-1",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/htpasswd/bob:v1", server.host),
    ]));
    assert!(!pushed.status.success(), "bob may not push");

    // Removed users stop working (carol never logged in, so nothing is cached for her).
    run_ok(
        Command::new("htpasswd")
            .arg("-Bb")
            .arg(&file)
            .args(["carol", "carol-pw-1"]),
    );
    run_ok(Command::new("htpasswd").arg("-D").arg(&file).arg("carol"));
    assert_eq!(status(&server, "carol", "carol-pw-1"), 401);

    // A web interface session ends as soon as its user leaves the file.
    let session = web_login(&server, "alice", "alice-pw-1");
    let home = |session: &str| {
        server
            .client()
            .get(server.at("/"))
            .header("cookie", session)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert!(home(&session).contains(r#"<span class="who">alice</span>"#));
    run_ok(Command::new("htpasswd").arg("-D").arg(&file).arg("alice"));
    let after = home(&session);
    assert!(
        !after.contains(r#"class="who""#) && after.contains(r#"href="/ui/login""#),
        "the session of a removed user is over"
    );

    let logs = server.logs() + &server.stderr();
    for secret in ["alice-pw-1", "bob-pw-1", "carol-pw-1"] {
        assert!(!logs.contains(secret), "{secret} leaked into the log");
    }
}

/// Logs in through the web interface's form over HTTP; answers the session cookie
/// (`name=value`).
pub(crate) fn web_login(server: &Server, user: &str, password: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client.get(server.at("/ui/login")).send().unwrap();
    let cookie_of = |resp: &reqwest::blocking::Response, name: &str| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let login_cookie = cookie_of(&form, "ocis_login_csrf");
    let body = form.text().unwrap();
    let token = body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login form's token")
        .to_owned();
    let resp = client
        .post(server.at("/ui/login"))
        .header("cookie", login_cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303, "web login of {user}");
    cookie_of(&resp, "ocis_session")
}
