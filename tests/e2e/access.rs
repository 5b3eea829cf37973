//! Authorization and login protection, black box: a permission matrix (callers × repositories
//! × actions, anonymous included) asserting every allow and every deny, filtered catalogs,
//! no hint that a repository exists, and brute-force limits per address and per user.

use std::net::IpAddr;
use std::time::Duration;

use oci_storage_tests::{Server, sha256};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};

const PW: &str = "Matrix-Passw0rd-41c7";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn config(extra: &str) -> String {
    format!(
        r#"storage: {{type: fs, fs: {{path: data}}}}
auth:
  admins: [root]
  users:
    - {{username: root, password: {PW}}}
    - {{username: alice, password: {PW}, groups: [team-a]}}
    - {{username: bob, password: {PW}}}
  rules:
    - {{repositories: ["team-a/**"], actions: [pull, push, delete], groups: [team-a]}}
    - {{repositories: ["team-a/**"], actions: [pull], users: [bob]}}
    - {{repositories: ["public/**"], actions: [pull], anonymous: true}}
{extra}"#
    )
}

fn client_from(ip: &str) -> Client {
    Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn request(
    client: &Client,
    server: &Server,
    method: Method,
    path: &str,
    user: Option<&str>,
) -> RequestBuilder {
    let req = client.request(method, server.at(path));
    match user {
        Some(u) => req.basic_auth(u, Some(PW)),
        None => req,
    }
}

/// Pushes the empty config blob and a manifest under `tag` as root.
fn push_manifest(client: &Client, server: &Server, repo: &str, tag: &str) {
    let resp = request(
        client,
        server,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(b"{}")),
        Some("root"),
    )
    .body("{}")
    .send()
    .unwrap();
    assert_eq!(resp.status(), 201);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [],
    });
    let resp = request(
        client,
        server,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        Some("root"),
    )
    .header("content-type", OCI_MANIFEST)
    .body(manifest.to_string())
    .send()
    .unwrap();
    assert_eq!(resp.status(), 201);
}

/// The answer's status and OCI error code (if any).
fn outcome(resp: reqwest::blocking::Response) -> (u16, Option<String>, bool) {
    let status = resp.status().as_u16();
    let challenge = resp.headers().contains_key("www-authenticate");
    let code = resp
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_owned));
    (status, code, challenge)
}

#[test]
fn permission_matrix() {
    let server = Server::start_with(super::BIN, &config(""), &[]);
    let client = server.client();
    let repos = ["team-a/app", "team-b/app", "public/lib"];
    let callers = [None, Some("root"), Some("alice"), Some("bob")];
    for repo in repos {
        push_manifest(&client, &server, repo, "v1");
        for caller in callers {
            push_manifest(
                &client,
                &server,
                repo,
                &format!("del-{}", caller.unwrap_or("anon")),
            );
        }
    }
    // Expected grants: (caller, repo) → (pull, push, delete).
    let expect = |caller: Option<&str>, repo: &str| -> (bool, bool, bool) {
        match (caller, repo) {
            (Some("root"), _) => (true, true, true),
            (Some("alice"), "team-a/app") => (true, true, true),
            (Some("bob"), "team-a/app") => (true, false, false),
            (_, "public/lib") => (true, false, false),
            _ => (false, false, false),
        }
    };
    let mut checked = 0;
    for repo in repos {
        for caller in callers {
            let (pull, push, delete) = expect(caller, repo);
            let name = caller.unwrap_or("anon");
            let attempts = [
                (
                    "pull",
                    pull,
                    Method::GET,
                    format!("/v2/{repo}/manifests/v1"),
                    200,
                ),
                (
                    "push",
                    push,
                    Method::POST,
                    format!("/v2/{repo}/blobs/uploads/"),
                    202,
                ),
                (
                    "delete",
                    delete,
                    Method::DELETE,
                    format!("/v2/{repo}/manifests/del-{name}"),
                    202,
                ),
            ];
            for (action, allowed, method, path, ok_status) in attempts {
                let resp = request(&client, &server, method, &path, caller)
                    .header("accept", OCI_MANIFEST)
                    .send()
                    .unwrap();
                let (status, code, challenge) = outcome(resp);
                let what = format!("{name} {action} {repo}");
                if allowed {
                    assert_eq!(status, ok_status, "{what} must be allowed");
                } else if caller.is_none() {
                    assert_eq!(
                        (status, code.as_deref()),
                        (401, Some("UNAUTHORIZED")),
                        "{what}"
                    );
                    assert!(challenge, "{what}: 401 carries a challenge");
                } else {
                    assert_eq!((status, code.as_deref()), (403, Some("DENIED")), "{what}");
                }
                checked += 1;
            }
            // A denied delete left the tag in place.
            if !delete {
                let still = request(
                    &client,
                    &server,
                    Method::HEAD,
                    &format!("/v2/{repo}/manifests/del-{name}"),
                    Some("root"),
                )
                .header("accept", OCI_MANIFEST)
                .send()
                .unwrap();
                assert_eq!(still.status(), 200, "{name} could not delete in {repo}");
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 3);

    // No hint that a repository exists: the same answer for a missing one.
    for (caller, status) in [(Some("bob"), 403), (None, 401)] {
        for repo in ["team-b/app", "team-b/does-not-exist"] {
            let resp = request(
                &client,
                &server,
                Method::GET,
                &format!("/v2/{repo}/tags/list"),
                caller,
            )
            .send()
            .unwrap();
            assert_eq!(resp.status().as_u16(), status, "{caller:?} {repo}");
        }
    }
}

#[test]
fn catalog_shows_only_what_the_caller_may_pull() {
    let server = Server::start_with(super::BIN, &config(""), &[]);
    let client = server.client();
    for repo in ["team-a/app", "team-b/app", "public/lib"] {
        push_manifest(&client, &server, repo, "v1");
    }
    let catalog = |caller: Option<&str>| -> serde_json::Value {
        let resp = request(&client, &server, Method::GET, "/v2/_catalog", caller)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{caller:?}");
        resp.json::<serde_json::Value>().unwrap()["repositories"].clone()
    };
    assert_eq!(
        catalog(Some("root")),
        serde_json::json!(["public/lib", "team-a/app", "team-b/app"])
    );
    assert_eq!(
        catalog(Some("alice")),
        serde_json::json!(["public/lib", "team-a/app"])
    );
    assert_eq!(
        catalog(Some("bob")),
        serde_json::json!(["public/lib", "team-a/app"])
    );
    assert_eq!(catalog(None), serde_json::json!(["public/lib"]));
}

#[test]
fn anonymous_is_refused_at_the_root_without_anonymous_rules() {
    let yaml = format!(
        "storage: {{type: fs, fs: {{path: data}}}}\nauth:\n  users: [{{username: u, password: {PW}}}]\n  rules:\n    - {{repositories: ['**'], actions: [pull], users: [u]}}\n"
    );
    let server = Server::start_with(super::BIN, &yaml, &[]);
    let client = server.client();
    let (status, code, challenge) = outcome(
        request(&client, &server, Method::GET, "/v2/", None)
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, code.as_deref(), challenge),
        (401, Some("UNAUTHORIZED"), true)
    );
    let (status, ..) = outcome(
        request(&client, &server, Method::GET, "/v2/", Some("u"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    // The only rule grants pull: the user cannot push.
    let (status, code, _) = outcome(
        request(
            &client,
            &server,
            Method::POST,
            "/v2/x/blobs/uploads/",
            Some("u"),
        )
        .send()
        .unwrap(),
    );
    assert_eq!((status, code.as_deref()), (403, Some("DENIED")));
}

#[test]
fn brute_force_is_limited_per_address_and_per_user() {
    let limits = "  loginLimits: {perAddress: 5, perUser: 3, windowSeconds: 60}\n";
    let server = Server::start_with(super::BIN, &config(limits), &[]);
    let attempt = |ip: &str, user: &str, password: &str| {
        let resp = client_from(ip)
            .get(server.at("/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .unwrap();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        (resp.status().as_u16(), retry)
    };

    // bob works from his usual address first.
    assert_eq!(attempt("127.0.0.1", "bob", PW).0, 200);
    // Someone guesses bob's password from elsewhere.
    for _ in 0..3 {
        assert_eq!(attempt("127.0.0.2", "bob", "guess").0, 401);
    }
    let (status, retry) = attempt("127.0.0.2", "bob", PW);
    assert_eq!(
        status, 429,
        "bob is locked for untrusted addresses, even with the right password"
    );
    let retry = retry.expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(attempt("127.0.0.3", "bob", "guess").0, 429);
    assert_eq!(
        attempt("127.0.0.1", "bob", PW).0,
        200,
        "bob keeps working from where he logged in"
    );
    assert_eq!(
        attempt("127.0.0.2", "alice", PW).0,
        200,
        "other users are unaffected"
    );

    // One address failing with many usernames is limited as a whole.
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        assert_eq!(attempt("127.0.0.4", user, "guess").0, 401);
    }
    assert_eq!(
        attempt("127.0.0.4", "root", PW).0,
        429,
        "the address is blocked"
    );
    assert_eq!(
        attempt("127.0.0.5", "root", PW).0,
        200,
        "other addresses are not"
    );
    let logs = server.logs();
    assert!(logs.contains("too many failed attempts"), "{logs}");
    assert!(
        !logs.contains(PW) && !logs.contains("guess"),
        "no secret in the log"
    );
}

#[test]
fn mounts_need_pull_rights_on_the_source_and_catalog_pages_skip_hidden_names() {
    let server = Server::start_with(super::BIN, &config(""), &[]);
    let client = server.client();
    for repo in ["team-b/app", "team-a/app", "public/lib", "team-b/zz"] {
        push_manifest(&client, &server, repo, "v1");
    }
    let digest = sha256(b"{}");
    let mount = |user: &str, from: &str| {
        request(
            &client,
            &server,
            Method::POST,
            &format!("/v2/team-a/mounted/blobs/uploads/?mount={digest}&from={from}"),
            Some(user),
        )
        .send()
        .unwrap()
        .status()
        .as_u16()
    };
    assert_eq!(
        mount("alice", "team-b/app"),
        202,
        "alice cannot read team-b: no mount, a plain session"
    );
    assert_eq!(mount("alice", "public/lib"), 201, "alice may read public/");
    assert_eq!(mount("root", "team-b/app"), 201);

    // bob sees public/lib and team-a/app; with n=1 every page has one name and the hidden
    // team-b names never end the listing early.
    let mut seen = Vec::new();
    let mut path = "/v2/_catalog?n=1".to_owned();
    for _ in 0..10 {
        let resp = request(&client, &server, Method::GET, &path, Some("bob"))
            .send()
            .unwrap();
        let link = resp
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let body: serde_json::Value = resp.json().unwrap();
        seen.extend(
            body["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned()),
        );
        match link {
            Some(link) => path = link[1..link.find('>').unwrap()].to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["public/lib", "team-a/app"]);
}
