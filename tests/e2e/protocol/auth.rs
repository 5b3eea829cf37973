//! end-1 and access control: `GET /v2/` with and without credentials, the challenge, the API
//! version header, and anonymous pulls.

use oci_storage_tests::{PASSWORD, Server, USER};
use reqwest::Method;

use super::{Reg, assert_error, header, json_body};

#[test]
fn api_version_requires_credentials() {
    let reg = Reg::start();

    let resp = reg.anon(Method::GET, "/v2/").send().unwrap();
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let challenge = header(&resp, "www-authenticate");
    assert!(
        challenge.starts_with("Basic realm="),
        "challenge {challenge:?}"
    );
    assert_error(resp, 401, "UNAUTHORIZED");

    // Without the trailing slash too.
    let resp = reg.anon(Method::GET, "/v2").send().unwrap();
    assert_eq!(resp.status(), 401);

    let resp = reg
        .anon(Method::GET, "/v2/")
        .basic_auth(USER, Some("wrong-password"))
        .send()
        .unwrap();
    assert!(header(&resp, "www-authenticate").starts_with("Basic realm="));
    assert_error(resp, 401, "UNAUTHORIZED");

    let resp = reg
        .anon(Method::GET, "/v2/")
        .basic_auth("nobody", Some(PASSWORD))
        .send()
        .unwrap();
    assert_error(resp, 401, "UNAUTHORIZED");

    // Not Basic at all, or garbage after it.
    for value in ["Bearer abc", "Basic !!!not-base64", "Basic"] {
        let resp = reg
            .anon(Method::GET, "/v2/")
            .header("authorization", value)
            .send()
            .unwrap();
        assert_error(resp, 401, "UNAUTHORIZED");
    }

    let resp = reg.get("/v2/");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(json_body(resp), serde_json::json!({}));
}

#[test]
fn every_protected_operation_needs_credentials() {
    let reg = Reg::start();
    let (_, digest) = reg.push_image("private/app", "v1", b"layer");
    for (method, path) in [
        (Method::GET, "/v2/_catalog".to_owned()),
        (Method::GET, "/v2/private/app/tags/list".to_owned()),
        (Method::GET, "/v2/private/app/manifests/v1".to_owned()),
        (
            Method::GET,
            format!("/v2/private/app/blobs/{}", super::EMPTY_DIGEST),
        ),
        (Method::GET, format!("/v2/private/app/referrers/{digest}")),
        (Method::POST, "/v2/private/app/blobs/uploads/".to_owned()),
        (Method::PUT, "/v2/private/app/manifests/v2".to_owned()),
        (Method::DELETE, "/v2/private/app/manifests/v1".to_owned()),
    ] {
        let resp = reg.anon(method.clone(), &path).send().unwrap();
        assert!(
            resp.headers().contains_key("www-authenticate"),
            "{method} {path}"
        );
        assert_error(resp, 401, "UNAUTHORIZED");
    }
    // Nothing changed.
    assert_eq!(reg.get("/v2/private/app/manifests/v1").status(), 200);
}

#[test]
fn anonymous_pull_allows_reads_only() {
    let config = format!(
        "storage:\n  type: fs\n  fs:\n    path: data\nauth:\n  anonymousPull: true\n  users:\n    - username: {USER}\n      password: {PASSWORD}\n"
    );
    let reg = Reg::with(Server::start_with(crate::BIN, &config, &[]));
    let (manifest, digest) = reg.push_image("public/app", "v1", b"public layer");

    // The ping challenges callers without credentials, so clients that have some send them.
    assert_eq!(reg.anon(Method::GET, "/v2/").send().unwrap().status(), 401);
    let resp = reg
        .anon(Method::GET, "/v2/public/app/manifests/v1")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(resp.bytes().unwrap().as_ref(), manifest.as_slice());
    let resp = reg
        .anon(
            Method::GET,
            &format!("/v2/public/app/blobs/{}", super::EMPTY_DIGEST),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), b"{}");
    let resp = reg
        .anon(Method::GET, "/v2/public/app/tags/list")
        .send()
        .unwrap();
    assert_eq!(json_body(resp)["tags"], serde_json::json!(["v1"]));

    // Pushes and deletes still need a login.
    let resp = reg
        .anon(Method::POST, "/v2/public/app/blobs/uploads/")
        .send()
        .unwrap();
    assert!(header(&resp, "www-authenticate").starts_with("Basic realm="));
    assert_error(resp, 401, "UNAUTHORIZED");
    let resp = reg
        .anon(
            Method::POST,
            &format!(
                "/v2/public/app/blobs/uploads/?digest={}",
                oci_storage_tests::sha256(b"x")
            ),
        )
        .body("x")
        .send()
        .unwrap();
    assert_error(resp, 401, "UNAUTHORIZED");
    let resp = reg
        .anon(Method::PUT, "/v2/public/app/manifests/v2")
        .header("content-type", super::OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_error(resp, 401, "UNAUTHORIZED");
    let resp = reg
        .anon(Method::DELETE, "/v2/public/app/manifests/v1")
        .send()
        .unwrap();
    assert_error(resp, 401, "UNAUTHORIZED");
    assert_eq!(reg.get("/v2/public/app/manifests/v2").status(), 404);
    assert_eq!(reg.get("/v2/public/app/manifests/v1").status(), 200);

    // Wrong credentials are refused even where anonymous access would do.
    let resp = reg
        .anon(Method::GET, "/v2/public/app/manifests/v1")
        .basic_auth(USER, Some("wrong"))
        .send()
        .unwrap();
    assert_error(resp, 401, "UNAUTHORIZED");
}
