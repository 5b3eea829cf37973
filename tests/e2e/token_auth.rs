//! The built-in Docker token service end to end: the Bearer challenge, helm and skopeo doing
//! the token dance, grants intersected with permissions (partial grants), anonymous tokens,
//! and refusal of tampered, foreign-scope and expired tokens.

use std::process::Command;
use std::time::Duration;

use oci_storage_tests::{Server, helm_env, layout, require_tool, run, run_ok};
use reqwest::blocking::Client;

const PW: &str = "Token-Passw0rd-77ab";

fn config(extra_token: &str) -> String {
    format!(
        r#"storage: {{type: fs, fs: {{path: data}}}}
auth:
  users:
    - {{username: alice, password: {PW}}}
    - {{username: bob, password: {PW}}}
  rules:
    - {{repositories: ["**"], actions: [pull, push, delete], users: [alice]}}
    - {{repositories: ["**"], actions: [pull], users: [bob]}}
    - {{repositories: ["public/**"], actions: [pull], anonymous: true}}
  token: {{enabled: true{extra_token}}}
"#
    )
}

/// Asks the realm for a token; answers (status, token).
fn token(
    client: &Client,
    server: &Server,
    user: Option<&str>,
    scopes: &[&str],
) -> (u16, Option<String>) {
    let mut url = server.at("/auth/token?service=oci-storage");
    for scope in scopes {
        url.push_str("&scope=");
        url.push_str(&form_escape(scope));
    }
    let mut req = client.get(url);
    if let Some(user) = user {
        req = req.basic_auth(user, Some(PW));
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let token = resp
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned));
    (status, token)
}

fn form_escape(s: &str) -> String {
    s.replace(':', "%3A")
        .replace('/', "%2F")
        .replace(',', "%2C")
}

/// The `access` claim of a token.
fn access(token: &str) -> serde_json::Value {
    claims(token)["access"].clone()
}

/// The claims of a token (its payload is readable base64url JSON).
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn bearer_status(
    client: &Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> u16 {
    client
        .request(method, server.at(path))
        .bearer_auth(token)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn helm_and_skopeo_do_the_token_dance() {
    require_tool("helm");
    require_tool("helm4");
    require_tool("skopeo");
    let server = Server::start_with(super::BIN, &config(""), &[]);
    let client = server.client();

    // The challenge points at the realm of this server, with the scope the request needs.
    let resp = client
        .get(server.at("/v2/private/app/manifests/v1"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{}/auth/token\",service=\"oci-storage\",scope=\"repository:private/app:pull\"",
            server.url
        )
    );
    let resp = client
        .post(server.at("/v2/private/app/blobs/uploads/"))
        .send()
        .unwrap();
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with("scope=\"repository:private/app:pull,push\"")
    );

    // helm 3 logs in, pushes and pulls; helm 4 pulls.
    let home = server.scratch("helm");
    run_ok(helm_env("helm", &home).args(["create", "chart"]));
    run_ok(helm_env("helm", &home).args(["package", "chart"]));
    run_ok(helm_env("helm", &home).args([
        "registry",
        "login",
        &server.host,
        "-u",
        "alice",
        "-p",
        PW,
        "--insecure",
    ]));
    let wrong = run(helm_env("helm", &home).args([
        "registry",
        "login",
        &server.host,
        "-u",
        "alice",
        "-p",
        "nope",
        "--insecure",
    ]));
    assert!(
        !wrong.status.success(),
        "a wrong password fails at the realm"
    );
    let repo = format!("oci://{}/private/charts", server.host);
    run_ok(helm_env("helm", &home).args(["push", "chart-0.1.0.tgz", &repo, "--plain-http"]));
    std::fs::create_dir_all(home.join("out")).unwrap();
    run_ok(helm_env("helm4", &home).args([
        "registry",
        "login",
        &server.host,
        "-u",
        "bob",
        "-p",
        PW,
        "--plain-http",
    ]));
    run_ok(helm_env("helm4", &home).args([
        "pull",
        &format!("{repo}/chart"),
        "--version",
        "0.1.0",
        "--plain-http",
        "-d",
        "out",
    ]));
    assert_eq!(
        std::fs::read(home.join("out/chart-0.1.0.tgz")).unwrap(),
        std::fs::read(home.join("chart-0.1.0.tgz")).unwrap()
    );
    let bob_push = run(helm_env("helm4", &home).args([
        "push",
        "chart-0.1.0.tgz",
        &format!("oci://{}/bob/charts", server.host),
        "--plain-http",
    ]));
    assert!(!bob_push.status.success(), "bob's token grants no push");

    // skopeo with credentials: copy in, inspect, list tags.
    let auth = server.scratch("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let src = server.scratch("layout");
    let image = layout::single_image(&src, "v1", &[2048, 4096]);
    let creds = format!("alice:{PW}");
    let dest = format!("docker://{}/private/image:v1", server.host);
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args([
                "copy",
                "--dest-tls-verify=false",
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
                "--tls-verify=false",
                "--creds",
                &creds,
                &dest,
            ]),
    );
    assert_eq!(
        oci_storage_tests::sha256(raw.as_bytes()),
        image.manifest.digest
    );
    let anonymous = run(Command::new("skopeo")
        .env("REGISTRY_AUTH_FILE", &auth)
        .args(["inspect", "--raw", "--tls-verify=false", &dest]));
    assert!(
        !anonymous.status.success(),
        "an anonymous token grants nothing on private/"
    );

    let logs = server.logs();
    assert!(
        logs.contains("path=/auth/token status=200"),
        "clients used the realm"
    );
    assert!(!logs.contains(PW), "no password in the log");
}

#[test]
fn grants_are_intersected_and_tokens_checked() {
    let server = Server::start_with(super::BIN, &config(", expirySeconds: 4"), &[]);
    let client = server.client();
    // alice pushes something to pull.
    let (_, alice) = token(
        &client,
        &server,
        Some("alice"),
        &["repository:team/app:pull,push"],
    );
    let alice = alice.unwrap();
    assert_eq!(
        access(&alice),
        serde_json::json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
    assert_eq!(
        bearer_status(
            &client,
            &server,
            reqwest::Method::POST,
            "/v2/team/app/blobs/uploads/",
            &alice
        ),
        202
    );

    // A resource named again merges into one grant; a request naming more resources than
    // any client needs (the token would grow with each) is refused.
    let (_, merged) = token(
        &client,
        &server,
        Some("alice"),
        &[
            "repository:team/app:pull",
            "repository:team/app:push,pull repository:team/app:pull",
        ],
    );
    assert_eq!(access(&merged.unwrap()), access(&alice));
    let many: Vec<String> = (0..33).map(|i| format!("repository:r{i}:pull")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(token(&client, &server, Some("alice"), &many[..32]).0, 200);
    assert_eq!(token(&client, &server, Some("alice"), &many).0, 400);

    // A partial grant is not an error: bob asked for push, gets pull only.
    let (status, bob) = token(
        &client,
        &server,
        Some("bob"),
        &["repository:team/app:pull,push,delete"],
    );
    assert_eq!(status, 200);
    let bob = bob.unwrap();
    assert_eq!(
        access(&bob),
        serde_json::json!([{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    );
    let resp = client
        .post(server.at("/v2/team/app/blobs/uploads/"))
        .bearer_auth(&bob)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Nothing granted for a repository the token does not name.
    assert_eq!(
        bearer_status(
            &client,
            &server,
            reqwest::Method::GET,
            "/v2/other/tags/list",
            &bob
        ),
        403
    );

    // Anonymous tokens: what anonymous users may do, nothing more.
    let (status, anon) = token(
        &client,
        &server,
        None,
        &[
            "repository:public/lib:pull,push",
            "repository:team/app:pull",
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(
        access(&anon.unwrap()),
        serde_json::json!([{"type": "repository", "name": "public/lib", "actions": ["pull"]}])
    );

    // Several scopes in one parameter (space separated), names with a port, nonsense ignored.
    let (_, multi) = token(
        &client,
        &server,
        Some("alice"),
        &[
            "repository:a/b:pull repository:c:push",
            "garbage",
            "repository:Bad Name:pull",
        ],
    );
    let granted = access(&multi.unwrap());
    assert_eq!(granted.as_array().unwrap().len(), 2, "{granted}");

    // Wrong credentials at the realm: 401.
    let resp = client
        .get(server.at("/auth/token?service=oci-storage&scope=repository%3Aa%3Apull"))
        .basic_auth("alice", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A tampered token is refused.
    let mut tampered = alice.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        bearer_status(
            &client,
            &server,
            reqwest::Method::GET,
            "/v2/team/app/tags/list",
            &tampered
        ),
        401
    );
    assert_eq!(
        bearer_status(
            &client,
            &server,
            reqwest::Method::GET,
            "/v2/team/app/tags/list",
            "not.a.token"
        ),
        401
    );

    // Tokens survive a restart (the key lives in storage) but not their expiry.
    let (_, fresh) = token(
        &client,
        &server,
        Some("alice"),
        &["repository:team/app:pull"],
    );
    let fresh = fresh.unwrap();
    let mut server = server;
    server.restart();
    let client = server.client();
    assert_eq!(
        bearer_status(
            &client,
            &server,
            reqwest::Method::GET,
            "/v2/team/app/tags/list",
            &fresh
        ),
        404,
        "still valid after a restart (authorized; the repository has no tags)"
    );
    // Wait until the clock is past the token's `exp` (whole seconds).
    let exp = claims(&fresh)["exp"].as_u64().unwrap();
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        <= exp
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        bearer_status(
            &client,
            &server,
            reqwest::Method::GET,
            "/v2/team/app/tags/list",
            &fresh
        ),
        401,
        "expired"
    );
    assert!(!server.logs().contains(PW));
}

#[test]
fn signing_key_from_config_is_shared_and_foreign_tokens_are_refused() {
    require_tool("openssl");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("token.key");
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key),
    );
    let with_key = config(&format!(", key: {}", key.display()));
    let a = Server::start_with(super::BIN, &with_key, &[]);
    let b = Server::start_with(super::BIN, &with_key, &[]);
    let other = Server::start_with(super::BIN, &config(""), &[]);
    let client = a.client();
    let (status, issued) = token(&client, &a, Some("alice"), &["repository:shared/app:pull"]);
    assert_eq!(status, 200);
    let issued = issued.unwrap();
    let path = "/v2/shared/app/tags/list";
    assert_eq!(
        bearer_status(&client, &a, reqwest::Method::GET, path, &issued),
        404,
        "valid where issued"
    );
    assert_eq!(
        bearer_status(&client, &b, reqwest::Method::GET, path, &issued),
        404,
        "valid on a replica with the same key"
    );
    assert_eq!(
        bearer_status(&client, &other, reqwest::Method::GET, path, &issued),
        401,
        "refused under another key"
    );
    assert!(
        !other
            .data_dir()
            .join("system/token-signing-key.json")
            .exists()
            || !a.data_dir().join("system/token-signing-key.json").exists(),
        "a configured key is not written to storage"
    );
    assert!(!a.data_dir().join("system/token-signing-key.json").exists());
}
