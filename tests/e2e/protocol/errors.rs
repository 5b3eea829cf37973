//! Request validation: repository names (sent raw, so that no client normalises `..` or
//! `%2e%2e` away), tags in references, methods an endpoint does not support, and unknown
//! endpoints.

use oci_storage_tests::sha256;
use reqwest::Method;

use super::{
    EMPTY_DIGEST, OCI_MANIFEST, Reg, artifact_manifest, assert_error, header, json_body,
    raw_error_code,
};

#[test]
fn invalid_names_are_refused() {
    let reg = Reg::start();
    // `<host>/<name>` is at most 255 characters: a name, at most 253.
    let long = "a".repeat(254);
    let long_nested = format!("{}/{}", "a".repeat(127), "b".repeat(126));
    let names = [
        "Upper",
        "upper/Case",
        "..",
        "a/..",
        "a/../b",
        "%2e%2e",
        "a/%2e%2e/b",
        "a/%2E%2E",
        "a%2fb",
        "abc-",
        "abc-/d",
        "-abc",
        "a_",
        ".a",
        "a.",
        "a..b",
        "a___b",
        "a//b",
        "a/",
        "a%20b",
        "a:b",
        long.as_str(),
        long_nested.as_str(),
    ];
    for name in names {
        for (method, target) in [
            ("GET", format!("/v2/{name}/manifests/latest")),
            ("HEAD", format!("/v2/{name}/manifests/latest")),
            ("PUT", format!("/v2/{name}/manifests/latest")),
            ("GET", format!("/v2/{name}/tags/list")),
            ("GET", format!("/v2/{name}/blobs/{EMPTY_DIGEST}")),
            ("POST", format!("/v2/{name}/blobs/uploads/")),
            ("GET", format!("/v2/{name}/referrers/{EMPTY_DIGEST}")),
        ] {
            let (status, head, body) = reg.raw(method, &target);
            assert_eq!(status, 400, "{method} {target}:\n{head}\n{body}");
            if method != "HEAD" {
                assert_eq!(raw_error_code(&body), "NAME_INVALID", "{method} {target}");
            }
        }
    }
    // Nothing was created.
    assert_eq!(
        json_body(reg.get("/v2/_catalog")),
        serde_json::json!({"repositories": []})
    );
}

#[test]
fn valid_names_at_the_edges_of_the_grammar() {
    let reg = Reg::start();
    let longest_component = "b".repeat(253);
    let long_nested = format!("{}/{}", "c".repeat(126), "d".repeat(126));
    let names = [
        "0",
        "a--b",
        "a---b",
        "a__b",
        "a.b_c-d",
        "x/y/z/w/v/u/t/s/r/q",
        longest_component.as_str(),
        long_nested.as_str(),
    ];
    for name in names {
        assert_eq!(reg.push_blob(name, b"{}"), EMPTY_DIGEST);
        let digest = reg.push_manifest(
            name,
            "v1",
            OCI_MANIFEST,
            &artifact_manifest(None, None, None),
        );
        let resp = reg.get(&format!("/v2/{name}/manifests/v1"));
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(header(&resp, "docker-content-digest"), digest);
    }
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort_unstable();
    assert_eq!(
        json_body(reg.get("/v2/_catalog"))["repositories"],
        serde_json::json!(expected)
    );
}

#[test]
fn invalid_tags_in_references_are_refused() {
    let reg = Reg::start();
    reg.push_blob("tags", b"{}");
    let manifest = artifact_manifest(None, None, None);
    let too_long = "t".repeat(129);
    for tag in ["-dash", ".dot", "a+b", too_long.as_str()] {
        let resp = reg.put_manifest("tags", tag, OCI_MANIFEST, &manifest);
        assert_eq!(resp.status(), 400, "{tag}");
        assert!(json_body(resp)["errors"][0]["code"].is_string());
        assert_eq!(reg.get(&format!("/v2/tags/manifests/{tag}")).status(), 400);
    }
    // The longest tag is fine.
    let longest = "t".repeat(128);
    reg.push_manifest("tags", &longest, OCI_MANIFEST, &manifest);
    assert_eq!(
        json_body(reg.get("/v2/tags/tags/list"))["tags"],
        serde_json::json!([longest])
    );
}

#[test]
fn unsupported_methods_answer_405_with_allow() {
    let reg = Reg::start();
    let (_, digest) = reg.push_image("methods", "v1", b"layer");
    let upload = reg.start_upload("methods");
    let read = "GET, HEAD";
    let blob = format!("/v2/methods/blobs/{EMPTY_DIGEST}");
    let manifest = "/v2/methods/manifests/v1";
    let referrers = format!("/v2/methods/referrers/{digest}");
    for (method, path, allow) in [
        (Method::POST, "/v2/", read),
        (Method::DELETE, "/v2/", read),
        (Method::PUT, "/v2/_catalog", read),
        (Method::POST, "/v2/_catalog", read),
        (Method::POST, "/v2/methods/tags/list", read),
        (Method::DELETE, "/v2/methods/tags/list", read),
        (Method::POST, manifest, "GET, HEAD, PUT, DELETE"),
        (Method::PATCH, manifest, "GET, HEAD, PUT, DELETE"),
        (Method::OPTIONS, manifest, "GET, HEAD, PUT, DELETE"),
        (Method::POST, &blob, "GET, HEAD, DELETE"),
        (Method::PUT, &blob, "GET, HEAD, DELETE"),
        (Method::PATCH, &blob, "GET, HEAD, DELETE"),
        (Method::GET, "/v2/methods/blobs/uploads/", "POST"),
        (Method::PUT, "/v2/methods/blobs/uploads/", "POST"),
        (Method::DELETE, "/v2/methods/blobs/uploads/", "POST"),
        (Method::POST, &upload, "GET, HEAD, PATCH, PUT, DELETE"),
        (Method::PUT, &referrers, read),
        (Method::DELETE, &referrers, read),
    ] {
        let resp = reg.req(method.clone(), path).send().unwrap();
        assert_eq!(
            header(&resp, "docker-distribution-api-version"),
            "registry/2.0"
        );
        assert_eq!(header(&resp, "allow"), allow, "{method} {path}");
        assert_error(resp, 405, "UNSUPPORTED");
    }
    // Nothing was changed by them.
    assert_eq!(reg.get(manifest).status(), 200);
    assert_eq!(reg.get(&upload).status(), 204);
    assert_eq!(reg.head(&blob).status(), 200);
}

#[test]
fn unknown_endpoints_answer_404() {
    let reg = Reg::start();
    for path in [
        "/v2/repo/unknown/thing".to_owned(),
        "/v2/repo/manifests".to_owned(),
        "/v2/repo/tags".to_owned(),
        format!("/v2/repo/referrers/{}/extra", sha256(b"x")),
    ] {
        let resp = reg.get(&path);
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(
            header(&resp, "docker-distribution-api-version"),
            "registry/2.0"
        );
        assert!(json_body(resp)["errors"][0]["code"].is_string(), "{path}");
    }
}

#[test]
fn names_that_look_like_endpoints() {
    let reg = Reg::start();
    let names = [
        "blobs",
        "uploads",
        "manifests",
        "tags",
        "list",
        "referrers",
        "v2",
        "a/blobs",
        "a/blobs/uploads",
        "a/manifests",
        "x/tags/list",
        "r/referrers",
    ];
    for name in names {
        let (bytes, digest) = reg.push_image(name, "list", name.as_bytes());
        let resp = reg.get(&format!("/v2/{name}/manifests/list"));
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.bytes().unwrap().as_ref(), bytes.as_slice(), "{name}");
        let resp = reg.get(&format!("/v2/{name}/tags/list"));
        assert_eq!(
            json_body(resp),
            serde_json::json!({ "name": name, "tags": ["list"] }),
            "{name}"
        );
        let resp = reg.get(&format!("/v2/{name}/blobs/{}", sha256(name.as_bytes())));
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.bytes().unwrap().as_ref(), name.as_bytes());
        let resp = reg.get(&format!("/v2/{name}/referrers/{digest}"));
        assert_eq!(
            json_body(resp)["manifests"],
            serde_json::json!([]),
            "{name}"
        );
        let upload = reg.start_upload(name);
        assert!(
            upload.starts_with(&format!("/v2/{name}/blobs/uploads/")),
            "{upload}"
        );
        assert_eq!(reg.get(&upload).status(), 204, "{name}");
    }
    let mut expected = names.to_vec();
    expected.sort_unstable();
    assert_eq!(
        json_body(reg.get("/v2/_catalog"))["repositories"],
        serde_json::json!(expected)
    );
}

#[test]
fn deletes_can_be_disabled() {
    let config = format!(
        "{}registry:\n  deleteEnabled: false\n",
        oci_storage_tests::default_config()
    );
    let reg = Reg::with(oci_storage_tests::Server::start_with(
        crate::BIN,
        &config,
        &[],
    ));
    let (_, digest) = reg.push_image("keep", "v1", b"kept layer");
    let layer = sha256(b"kept layer");
    for (path, allow) in [
        ("/v2/keep/manifests/v1".to_owned(), "GET, HEAD, PUT"),
        (format!("/v2/keep/manifests/{digest}"), "GET, HEAD, PUT"),
        (format!("/v2/keep/blobs/{layer}"), "GET, HEAD"),
    ] {
        let resp = reg.delete(&path);
        assert_eq!(header(&resp, "allow"), allow, "{path}");
        assert_error(resp, 405, "UNSUPPORTED");
    }
    assert_eq!(reg.get("/v2/keep/manifests/v1").status(), 200);
    assert_eq!(reg.get(&format!("/v2/keep/blobs/{layer}")).status(), 200);
    // Cancelling one's own upload is not a delete of content.
    let upload = reg.start_upload("keep");
    assert_eq!(reg.delete(&upload).status(), 204);
}
