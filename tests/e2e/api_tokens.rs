//! API tokens through the REST API, used by real clients: created (shown once), scoped to
//! repository patterns and actions, used as the password by helm and skopeo, listed with their
//! last use, revoked; plus the REST API's problem JSON and OpenAPI document.

use std::process::Command;

use oci_storage_tests::{Server, helm_env, layout, require_tool, run, run_ok};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const PW: &str = "Api-Passw0rd-3d9e";

fn config() -> String {
    format!(
        r#"storage: {{type: fs, fs: {{path: data}}}}
auth:
  admins: [root]
  users:
    - {{username: root, password: {PW}}}
    - {{username: alice, password: {PW}}}
    - {{username: bob, password: {PW}}}
"#
    )
}

fn api(
    client: &Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    user: &str,
    password: &str,
) -> reqwest::blocking::RequestBuilder {
    client
        .request(method, server.at(path))
        .basic_auth(user, Some(password))
}

fn create_token(client: &Client, server: &Server, user: &str, body: Value) -> (u16, Value) {
    let resp = api(
        client,
        server,
        reqwest::Method::POST,
        "/api/v1/tokens",
        user,
        PW,
    )
    .json(&body)
    .send()
    .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap())
}

#[test]
fn api_tokens_with_helm_and_skopeo() {
    require_tool("helm");
    require_tool("skopeo");
    let server = Server::start_with(super::BIN, &config(), &[]);
    let client = server.client();

    let (status, created) = create_token(
        &client,
        &server,
        "alice",
        json!({"name": "ci", "repositories": ["ci/**"], "actions": ["pull", "push"], "expiresInDays": 30}),
    );
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ocis_"));
    assert_eq!(created["owner"], "alice");
    assert!(created["expiresAt"].is_string() && created["lastUsedAt"].is_null());

    // helm logs in with the token as password and pushes inside the token's scope only.
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
        &token,
        "--insecure",
    ]));
    run_ok(helm_env("helm", &home).args([
        "push",
        "chart-0.1.0.tgz",
        &format!("oci://{}/ci/charts", server.host),
        "--plain-http",
    ]));
    let outside = run(helm_env("helm", &home).args([
        "push",
        "chart-0.1.0.tgz",
        &format!("oci://{}/prod/charts", server.host),
        "--plain-http",
    ]));
    assert!(
        !outside.status.success(),
        "the token does not reach prod/ although alice does"
    );
    let as_bob = run(helm_env("helm", &home).args([
        "registry",
        "login",
        &server.host,
        "-u",
        "bob",
        "-p",
        &token,
        "--insecure",
    ]));
    assert!(
        !as_bob.status.success(),
        "a token works only with its owner's name"
    );

    // skopeo with --creds user:token.
    let auth = server.scratch("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let src = server.scratch("layout");
    layout::single_image(&src, "v1", &[1500]);
    let creds = format!("alice:{token}");
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                &creds,
                &format!("oci:{}:v1", src.display()),
                &format!("docker://{}/ci/image:v1", server.host),
            ]),
    );

    // Listed with its last use; the token never appears again.
    let listed: Value = api(
        &client,
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        "alice",
        PW,
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0]["lastUsedAt"].is_string(), "{listed}");
    assert!(listed[0].get("token").is_none());

    // Only an admin sees everyone's tokens; a token cannot make tokens; bob cannot revoke it.
    let bobs: Value = api(
        &client,
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        "bob",
        PW,
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(bobs, json!([]));
    assert_eq!(
        api(
            &client,
            &server,
            reqwest::Method::GET,
            "/api/v1/tokens?all=true",
            "bob",
            PW
        )
        .send()
        .unwrap()
        .status(),
        403
    );
    let all: Value = api(
        &client,
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens?all=true",
        "root",
        PW,
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    let by_token = api(
        &client,
        &server,
        reqwest::Method::POST,
        "/api/v1/tokens",
        "alice",
        &token,
    )
    .json(&json!({"name": "x", "repositories": ["**"], "actions": ["pull"]}))
    .send()
    .unwrap();
    assert_eq!(by_token.status(), 403);
    let me: Value = api(
        &client,
        &server,
        reqwest::Method::GET,
        "/api/v1/me",
        "alice",
        &token,
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(me["apiTokenId"], id.as_str());
    assert_eq!(
        api(
            &client,
            &server,
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            "bob",
            PW
        )
        .send()
        .unwrap()
        .status(),
        404
    );

    // A token's scope narrows listings too (here an admin's token limited to ci/**).
    let (_, root_token) = create_token(
        &client,
        &server,
        "root",
        json!({"name": "ro", "repositories": ["ci/**"], "actions": ["pull"]}),
    );
    let root_token = root_token["token"].as_str().unwrap().to_owned();
    let catalog: Value = api(
        &client,
        &server,
        reqwest::Method::GET,
        "/v2/_catalog",
        "root",
        &root_token,
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(
        catalog["repositories"],
        json!(["ci/charts/chart", "ci/image"])
    );
    let outside = api(
        &client,
        &server,
        reqwest::Method::GET,
        "/v2/prod/x/tags/list",
        "root",
        &root_token,
    )
    .send()
    .unwrap();
    assert_eq!(outside.status(), 403);
    let all_by_token = api(
        &client,
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens?all=true",
        "root",
        &root_token,
    )
    .send()
    .unwrap();
    assert_eq!(
        all_by_token.status(),
        403,
        "an admin's token is not an admin"
    );
    assert_eq!(
        api(
            &client,
            &server,
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            "root",
            &root_token
        )
        .send()
        .unwrap()
        .status(),
        404,
        "a token revokes only itself"
    );

    // Revoked: it stops working at once.
    assert_eq!(
        api(
            &client,
            &server,
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            "alice",
            PW
        )
        .send()
        .unwrap()
        .status(),
        204
    );
    let after = run(Command::new("skopeo")
        .env("REGISTRY_AUTH_FILE", &auth)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{}/ci/image:v1", server.host),
        ]));
    assert!(!after.status.success(), "a revoked token is refused");
    assert_eq!(
        api(
            &client,
            &server,
            reqwest::Method::GET,
            "/api/v1/me",
            "alice",
            &token
        )
        .send()
        .unwrap()
        .status(),
        401
    );

    let logs = server.logs() + &server.stderr();
    let secret = token.rsplit('_').next().unwrap();
    assert!(
        !logs.contains(secret) && !logs.contains(PW),
        "no secret in the log"
    );
}

#[test]
fn rest_api_answers_problem_json_and_serves_its_document() {
    let server = Server::start_with(super::BIN, &config(), &[]);
    let client = server.client();
    let resp = client.get(server.at("/api/v1/me")).send().unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers().contains_key("www-authenticate"));
    let problem: Value = resp.json().unwrap();
    assert_eq!(
        (problem["status"].as_u64(), problem["title"].as_str()),
        (Some(401), Some("Unauthorized"))
    );

    let (status, problem) = create_token(
        &client,
        &server,
        "alice",
        json!({"name": "", "repositories": [], "actions": []}),
    );
    assert_eq!(status, 400);
    assert_eq!(problem["status"], 400);
    let (status, problem) = create_token(
        &client,
        &server,
        "alice",
        json!({"name": "x", "repositories": ["a/[b"], "actions": ["pull"]}),
    );
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("a/[b"),
        "{problem}"
    );

    let document: Value = client
        .get(server.at("/api/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        document, committed,
        "the served document is the committed one"
    );
    let ui = client.get(server.at("/api/docs/")).send().unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().unwrap().to_lowercase().contains("swagger"));
}

#[test]
fn tokens_stop_working_when_their_owner_is_removed() {
    let mut server = Server::start_with(super::BIN, &config(), &[]);
    let client = server.client();
    let (status, created) = create_token(
        &client,
        &server,
        "bob",
        json!({"name": "ci", "repositories": ["**"], "actions": ["pull"]}),
    );
    assert_eq!(status, 201);
    let token = created["token"].as_str().unwrap().to_owned();
    let me = |server: &Server| {
        server
            .client()
            .get(server.at("/api/v1/me"))
            .basic_auth("bob", Some(&token))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(me(&server), 200);
    // bob leaves the configuration; the registry restarts with it.
    let without_bob: String = config()
        .lines()
        .filter(|l| !l.contains("username: bob"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(server.scratch("config.yaml"), without_bob).unwrap();
    server.restart();
    assert_eq!(me(&server), 401, "the token of a removed user is refused");
}
