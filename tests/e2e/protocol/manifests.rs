//! Manifests (end-3, end-7, end-9): OCI and Docker schema2 manifests and indexes, exact bytes,
//! reference checks, size limit, digests, multi-tag push, artifacts, and deletes.

use oci_storage_tests::{sha256, sha512};
use reqwest::Method;
use serde_json::json;

use super::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, EMPTY_DIGEST, EMPTY_TYPE, OCI_CONFIG, OCI_INDEX,
    OCI_LAYER, OCI_MANIFEST, Reg, assert_error, header, image_manifest, json_body, maybe_header,
    text,
};

/// Checks that `reference` serves exactly `bytes` with `media_type`, by GET and HEAD.
#[track_caller]
fn assert_served(reg: &Reg, repo: &str, reference: &str, bytes: &[u8], media_type: &str) {
    let digest = sha256(bytes);
    let path = format!("/v2/{repo}/manifests/{reference}");
    let resp = reg.get(&path);
    assert_eq!(resp.status(), 200, "GET {path}");
    assert_eq!(header(&resp, "content-type"), media_type, "GET {path}");
    assert_eq!(header(&resp, "docker-content-digest"), digest, "GET {path}");
    assert_eq!(header(&resp, "content-length"), bytes.len().to_string());
    let body = resp.bytes().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(bytes),
        "GET {path}: bytes differ"
    );
    let resp = reg.head(&path);
    assert_eq!(resp.status(), 200, "HEAD {path}");
    assert_eq!(header(&resp, "content-type"), media_type, "HEAD {path}");
    assert_eq!(
        header(&resp, "docker-content-digest"),
        digest,
        "HEAD {path}"
    );
    assert_eq!(
        header(&resp, "content-length"),
        bytes.len().to_string(),
        "HEAD {path}"
    );
    assert!(resp.bytes().unwrap().is_empty(), "HEAD has no body");
}

/// Pushes `{}` and a layer; answers (config digest, layer digest, layer size).
fn blobs(reg: &Reg, repo: &str, layer: &[u8]) -> (String, String, usize) {
    let config = reg.push_blob(repo, b"{}");
    let layer_digest = reg.push_blob(repo, layer);
    (config, layer_digest, layer.len())
}

#[test]
fn oci_manifest_by_tag_and_by_digest() {
    let reg = Reg::start();
    let (config, layer, size) = blobs(&reg, "img/oci", b"layer one");
    let bytes = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &layer, size)]);
    let digest = sha256(&bytes);

    let resp = reg.put_manifest("img/oci", "v1", OCI_MANIFEST, &bytes);
    assert_eq!(resp.status(), 201, "{}", text(resp));
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/img/oci/manifests/{digest}")
    );
    assert!(maybe_header(&resp, "oci-subject").is_none());
    assert_served(&reg, "img/oci", "v1", &bytes, OCI_MANIFEST);
    assert_served(&reg, "img/oci", &digest, &bytes, OCI_MANIFEST);

    // By digest: no tag is created.
    let (config, layer, size) = blobs(&reg, "img/bydigest", b"layer two");
    let bytes = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &layer, size)]);
    let digest = sha256(&bytes);
    assert_eq!(
        reg.push_manifest("img/bydigest", &digest, OCI_MANIFEST, &bytes),
        digest
    );
    assert_served(&reg, "img/bydigest", &digest, &bytes, OCI_MANIFEST);
    let tags = json_body(reg.get("/v2/img/bydigest/tags/list"));
    assert_eq!(tags, json!({"name": "img/bydigest", "tags": []}));

    // Not visible from another repository.
    assert_error(
        reg.get(&format!("/v2/img/other/manifests/{digest}")),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn docker_schema2_manifest() {
    let reg = Reg::start();
    let config_bytes = br#"{"architecture":"amd64","os":"linux"}"#;
    let config = reg.push_blob("docker/img", config_bytes);
    let layer = reg.push_blob("docker/img", b"docker layer");
    let bytes = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": { "mediaType": DOCKER_CONFIG, "digest": config, "size": config_bytes.len() },
        "layers": [{ "mediaType": DOCKER_LAYER, "digest": layer, "size": 12 }],
    }))
    .unwrap();
    let digest = reg.push_manifest("docker/img", "latest", DOCKER_MANIFEST, &bytes);
    assert_eq!(digest, sha256(&bytes));
    assert_served(&reg, "docker/img", "latest", &bytes, DOCKER_MANIFEST);
    assert_served(&reg, "docker/img", &digest, &bytes, DOCKER_MANIFEST);
    // And again by digest.
    assert_eq!(
        reg.push_manifest("docker/img", &digest, DOCKER_MANIFEST, &bytes),
        digest
    );

    // A Docker manifest list over it.
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{
            "mediaType": DOCKER_MANIFEST, "digest": digest, "size": bytes.len(),
            "platform": { "architecture": "amd64", "os": "linux" }
        }],
    }))
    .unwrap();
    reg.push_manifest(
        "docker/img",
        "list",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        &list,
    );
    assert_served(
        &reg,
        "docker/img",
        "list",
        &list,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    );
}

#[test]
fn unknown_fields_and_annotations_round_trip_byte_for_byte() {
    let reg = Reg::start();
    let (config, layer, size) = blobs(&reg, "exact", b"exact layer");
    let text = format!(
        "\n{{\r\n   \"schemaVersion\" :2 ,\n\t\"mediaType\":\t\"{OCI_MANIFEST}\",\n  \"x-unknown\" : {{ \"nested\": [1, 2.50, 1e3, true, null, \"\\u00e9\"] }},\n  \"config\":{{\"mediaType\":\"{OCI_CONFIG}\",\"digest\":\"{config}\",\"size\":2,\"x-config-extra\":\"kept\"}},\n\n  \"layers\" : [\n      {{ \"mediaType\": \"{OCI_LAYER}\",\n         \"size\": {size},\n         \"digest\": \"{layer}\",\n         \"annotations\": {{\"org.opencontainers.image.title\": \"layer.tar.gz\"}} }}\n  ],\n  \"annotations\":{{ \"org.opencontainers.image.created\" : \"2024-02-29T12:00:00Z\",\n      \"com.example.unicode\": \"välue ☃ \\\"quoted\\\"\",\n      \"com.example.empty\": \"\" }}\n}}\n\n   "
    );
    let bytes = text.into_bytes();
    // The digest is that of the bytes as sent, not of any normalised form.
    let digest = reg.push_manifest("exact", "pretty", OCI_MANIFEST, &bytes);
    assert_eq!(digest, sha256(&bytes));
    assert_served(&reg, "exact", "pretty", &bytes, OCI_MANIFEST);
    assert_served(&reg, "exact", &digest, &bytes, OCI_MANIFEST);

    // The compact form of the same document is another manifest.
    let compact =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()).unwrap();
    let compact_digest = reg.push_manifest("exact", "compact", OCI_MANIFEST, &compact);
    assert_ne!(compact_digest, digest);
    assert_served(&reg, "exact", "pretty", &bytes, OCI_MANIFEST);
}

#[test]
fn media_type_from_content_type_when_the_body_has_none() {
    let reg = Reg::start();
    let (config, layer, size) = blobs(&reg, "notype", b"l");
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": { "mediaType": OCI_CONFIG, "digest": config, "size": 2 },
        "layers": [{ "mediaType": OCI_LAYER, "digest": layer, "size": size }],
    }))
    .unwrap();
    reg.push_manifest("notype", "v1", OCI_MANIFEST, &bytes);
    assert_served(&reg, "notype", "v1", &bytes, OCI_MANIFEST);
}

#[test]
fn references_must_exist() {
    let reg = Reg::start();
    let config = reg.push_blob("refs", b"{}");
    let missing = sha256(b"missing layer");

    // A missing layer.
    let bytes = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &missing, 13)]);
    let body = assert_error(
        reg.put_manifest("refs", "v1", OCI_MANIFEST, &bytes),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_eq!(body["errors"][0]["detail"]["digest"], missing);

    // A missing config.
    let layer = reg.push_blob("refs", b"present layer");
    let bytes = image_manifest(OCI_CONFIG, &missing, 2, &[(OCI_LAYER, &layer, 13)]);
    assert_error(
        reg.put_manifest("refs", "v1", OCI_MANIFEST, &bytes),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );

    // An index over a manifest that was never pushed (its blobs exist).
    let child = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &layer, 13)]);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sha256(&child), "size": child.len() }],
    }))
    .unwrap();
    let body = assert_error(
        reg.put_manifest("refs", "index", OCI_INDEX, &index),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_eq!(body["errors"][0]["detail"]["digest"], sha256(&child));
    // A blob of that digest does not count as a manifest.
    reg.push_blob("refs", &child);
    assert_error(
        reg.put_manifest("refs", "index", OCI_INDEX, &index),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    // Once the child is pushed as a manifest, the index goes through.
    reg.push_manifest("refs", &sha256(&child), OCI_MANIFEST, &child);
    reg.push_manifest("refs", "index", OCI_INDEX, &index);
    assert_served(&reg, "refs", "index", &index, OCI_INDEX);

    // Nothing of the refused pushes is visible.
    let tags = json_body(reg.get("/v2/refs/tags/list"));
    assert_eq!(tags["tags"], json!(["index"]));
}

#[test]
fn invalid_manifests_are_refused() {
    let reg = Reg::start();
    let config = reg.push_blob("invalid", b"{}");
    let good_config = json!({ "mediaType": OCI_CONFIG, "digest": config, "size": 2 });
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"this is not json".to_vec()),
        ("truncated", b"{\"schemaVersion\": 2, \"config\": {".to_vec()),
        ("empty body", Vec::new()),
        ("an array", b"[]".to_vec()),
        ("no schemaVersion", serde_json::to_vec(&json!({"mediaType": OCI_MANIFEST, "config": good_config, "layers": []})).unwrap()),
        ("schemaVersion 1", serde_json::to_vec(&json!({"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": good_config, "layers": []})).unwrap()),
        ("no config", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})).unwrap()),
        ("bad config digest", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": "sha256:nothex", "size": 2}, "layers": []})).unwrap()),
        ("negative size", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": config, "size": -1}, "layers": []})).unwrap()),
        ("layer without mediaType", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": good_config, "layers": [{"digest": config, "size": 2}]})).unwrap()),
        ("layers not a list", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": good_config, "layers": {}})).unwrap()),
    ];
    for (what, bytes) in cases {
        let resp = reg.put_manifest("invalid", "v1", OCI_MANIFEST, &bytes);
        assert_eq!(resp.status(), 400, "{what}: {}", text(resp));
        let body = json_body(resp);
        assert_eq!(
            body["errors"][0]["code"], "MANIFEST_INVALID",
            "{what}: {body}"
        );
    }
    // Docker schema 1 is not accepted.
    let resp = reg.put_manifest(
        "invalid",
        "v1",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        br#"{"schemaVersion":1,"name":"invalid","tag":"v1","fsLayers":[]}"#,
    );
    assert_error(resp, 400, "MANIFEST_INVALID");
    assert_error(reg.get("/v2/invalid/manifests/v1"), 404, "MANIFEST_UNKNOWN");
}

#[test]
fn content_type_must_match_media_type() {
    let reg = Reg::start();
    let (config, layer, size) = blobs(&reg, "mismatch", b"l");
    let manifest = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &layer, size)]);
    for wrong in [OCI_INDEX, DOCKER_MANIFEST] {
        assert_error(
            reg.put_manifest("mismatch", "v1", wrong, &manifest),
            400,
            "MANIFEST_INVALID",
        );
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []
    }))
    .unwrap();
    assert_error(
        reg.put_manifest("mismatch", "i", OCI_MANIFEST, &index),
        400,
        "MANIFEST_INVALID",
    );
    assert_error(
        reg.get("/v2/mismatch/manifests/v1"),
        404,
        "MANIFEST_UNKNOWN",
    );
    // Parameters on the Content-Type do not count as a mismatch.
    reg.push_manifest(
        "mismatch",
        "v1",
        &format!("{OCI_MANIFEST}; charset=utf-8"),
        &manifest,
    );
}

#[test]
fn size_limit() {
    let reg = Reg::start();
    let config = reg.push_blob("big", b"{}");
    // A valid manifest padded by an annotation to exactly `len` bytes.
    let padded = |len: usize| {
        let base = image_manifest(OCI_CONFIG, &config, 2, &[]);
        let base = String::from_utf8(base).unwrap();
        let skeleton = format!(
            "{},\"annotations\":{{\"pad\":\"\"}}}}",
            &base[..base.len() - 1]
        );
        let pad = "p".repeat(len - skeleton.len());
        let out = format!(
            "{},\"annotations\":{{\"pad\":\"{pad}\"}}}}",
            &base[..base.len() - 1]
        );
        assert_eq!(out.len(), len);
        out.into_bytes()
    };
    let limit = 4 * 1024 * 1024;
    let resp = reg.put_manifest("big", "over", OCI_MANIFEST, &padded(limit + 1));
    assert_eq!(resp.status(), 413, "{}", text(resp));
    assert!(json_body(resp)["errors"][0]["code"].is_string());
    assert_error(reg.get("/v2/big/manifests/over"), 404, "MANIFEST_UNKNOWN");

    // Well over the limit, streamed without a Content-Length.
    let huge = padded(limit + 1024 * 1024);
    let resp = reg
        .req(Method::PUT, "/v2/big/manifests/huge")
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(huge)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413, "{}", text(resp));

    // Exactly at the limit is fine (the spec asks registries to take at least 4 MiB).
    let at_limit = padded(limit);
    let digest = reg.push_manifest("big", "at-limit", OCI_MANIFEST, &at_limit);
    assert_eq!(digest, sha256(&at_limit));
    let resp = reg.get("/v2/big/manifests/at-limit");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().len(), limit);
}

#[test]
fn put_by_wrong_digest_is_refused() {
    let reg = Reg::start();
    let (config, layer, size) = blobs(&reg, "wrongdigest", b"l");
    let bytes = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &layer, size)]);
    let wrong = sha256(b"another document");
    assert_error(
        reg.put_manifest("wrongdigest", &wrong, OCI_MANIFEST, &bytes),
        400,
        "DIGEST_INVALID",
    );
    let wrong512 = sha512(b"another document");
    assert_error(
        reg.put_manifest("wrongdigest", &wrong512, OCI_MANIFEST, &bytes),
        400,
        "DIGEST_INVALID",
    );
    for d in [wrong, wrong512, sha256(&bytes)] {
        assert_error(
            reg.get(&format!("/v2/wrongdigest/manifests/{d}")),
            404,
            "MANIFEST_UNKNOWN",
        );
    }
}

#[test]
fn indexes_nested_with_artifact_type_and_subject() {
    let reg = Reg::start();
    let (subject_bytes, subject) = reg.push_image("idx", "subject", b"subject layer");
    let (config, layer, size) = blobs(&reg, "idx", b"child layer");
    let child = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &layer, size)]);
    let child_digest = reg.push_manifest("idx", &sha256(&child), OCI_MANIFEST, &child);

    let inner = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": child_digest, "size": child.len(),
            "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
        }],
        "annotations": { "level": "inner" },
    }))
    .unwrap();
    let inner_digest = reg.push_manifest("idx", "inner", OCI_INDEX, &inner);

    // An index of indexes, with an artifactType and a subject.
    let outer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [
            { "mediaType": OCI_INDEX, "digest": inner_digest, "size": inner.len() },
            { "mediaType": OCI_MANIFEST, "digest": child_digest, "size": child.len() },
        ],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len() },
        "annotations": { "level": "outer" },
    }))
    .unwrap();
    let resp = reg.put_manifest("idx", "outer", OCI_INDEX, &outer);
    assert_eq!(resp.status(), 201, "{}", text(resp));
    assert_eq!(header(&resp, "oci-subject"), subject);
    assert_served(&reg, "idx", "outer", &outer, OCI_INDEX);
    assert_served(&reg, "idx", "inner", &inner, OCI_INDEX);

    // An index whose child is an index that is missing.
    let dangling = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_INDEX, "digest": sha256(b"gone"), "size": 4 }],
    }))
    .unwrap();
    assert_error(
        reg.put_manifest("idx", "dangling", OCI_INDEX, &dangling),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );

    // An empty index is valid.
    let empty = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []
    }))
    .unwrap();
    reg.push_manifest("idx", "empty", OCI_INDEX, &empty);
    assert_served(&reg, "idx", "empty", &empty, OCI_INDEX);
}

#[test]
fn artifacts_foreign_layers_and_embedded_data() {
    let reg = Reg::start();
    // An artifact with the empty config and no layers.
    assert_eq!(reg.push_blob("art", b"{}"), EMPTY_DIGEST);
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": { "mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }))
    .unwrap();
    reg.push_manifest("art", "sig", OCI_MANIFEST, &artifact);
    assert_served(&reg, "art", "sig", &artifact, OCI_MANIFEST);

    // A non-distributable layer with urls is accepted without its blob.
    let foreign_digest = sha256(b"foreign layer nobody pushes");
    let foreign = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "digest": foreign_digest,
            "size": 27,
            "urls": ["https://example.com/layer.tar.gz"]
        }],
    }))
    .unwrap();
    reg.push_manifest("art", "foreign", OCI_MANIFEST, &foreign);
    assert_served(&reg, "art", "foreign", &foreign, OCI_MANIFEST);
    assert_eq!(
        reg.head(&format!("/v2/art/blobs/{foreign_digest}"))
            .status(),
        404
    );
    // Docker's foreign layer type too.
    let docker_foreign = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": { "mediaType": DOCKER_CONFIG, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": foreign_digest,
            "size": 27,
            "urls": ["https://example.com/layer.tar.gz"]
        }],
    }))
    .unwrap();
    reg.push_manifest("art", "docker-foreign", DOCKER_MANIFEST, &docker_foreign);
    // The same digest as an ordinary layer needs its blob.
    let ordinary = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [{ "mediaType": OCI_LAYER, "digest": foreign_digest, "size": 27 }],
    }))
    .unwrap();
    assert_error(
        reg.put_manifest("art", "ordinary", OCI_MANIFEST, &ordinary),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );

    // Descriptors with embedded data, in a repository that holds no blob at all.
    let embedded = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.small",
        "config": { "mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2, "data": "e30=" },
        "layers": [{
            "mediaType": "text/plain",
            "digest": sha256(b"hello"),
            "size": 5,
            "data": "aGVsbG8="
        }],
    }))
    .unwrap();
    reg.push_manifest("art/embedded", "v1", OCI_MANIFEST, &embedded);
    assert_served(&reg, "art/embedded", "v1", &embedded, OCI_MANIFEST);
}

#[test]
fn multi_tag_push() {
    let reg = Reg::start();
    let (bytes, digest) = reg.push_image("multi", "first", b"multi layer");
    let resp = reg
        .req(
            Method::PUT,
            &format!("/v2/multi/manifests/{digest}?tag=a&tag=b&tag=1.0.0"),
        )
        .header("content-type", OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text(resp));
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    let mut oci_tags: Vec<String> = resp
        .headers()
        .get_all("oci-tag")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(',').map(|t| t.trim().to_owned()))
        .collect();
    oci_tags.sort();
    assert_eq!(oci_tags, ["1.0.0", "a", "b"]);
    for tag in ["a", "b", "1.0.0", "first"] {
        assert_served(&reg, "multi", tag, &bytes, OCI_MANIFEST);
    }
    let tags = json_body(reg.get("/v2/multi/tags/list"));
    assert_eq!(tags["tags"], json!(["1.0.0", "a", "b", "first"]));

    // Repeated tags, and the reference repeated as an extra tag, count once.
    let resp = reg
        .req(
            Method::PUT,
            "/v2/multi/manifests/again?tag=x&tag=again&tag=x&tag=y&tag=x",
        )
        .header("content-type", OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text(resp));
    let mut oci_tags: Vec<&str> = resp
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    oci_tags.sort_unstable();
    assert_eq!(oci_tags, ["again", "x", "y"]);

    // An invalid extra tag refuses the whole push.
    let resp = reg
        .req(
            Method::PUT,
            &format!("/v2/multi/manifests/{digest}?tag=ok&tag=-bad"),
        )
        .header("content-type", OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400, "{}", text(resp));
    assert_error(reg.get("/v2/multi/manifests/ok"), 404, "MANIFEST_UNKNOWN");

    // Each tag is a write: one push names at most 64 distinct tags (repeats count once).
    let put_tags = |tags: &[String]| {
        let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
        reg.req(
            Method::PUT,
            &format!("/v2/multi/manifests/{digest}?{}", query.join("&")),
        )
        .header("content-type", OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .unwrap()
    };
    let mut tags: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
    tags.extend(std::iter::repeat_n("t0".to_owned(), 500));
    let resp = put_tags(&tags);
    assert_eq!(resp.status(), 201, "{}", text(resp));
    tags.push("t64".to_owned());
    let body = assert_error(put_tags(&tags), 400, "MANIFEST_INVALID");
    assert!(body.to_string().contains("at most 64"), "{body}");
    assert_error(reg.get("/v2/multi/manifests/t64"), 404, "MANIFEST_UNKNOWN");
}

#[test]
fn sha512_manifest() {
    let reg = Reg::start();
    let (config, layer, size) = blobs(&reg, "sha512m", b"l512");
    let bytes = image_manifest(OCI_CONFIG, &config, 2, &[(OCI_LAYER, &layer, size)]);
    let digest = sha512(&bytes);
    let resp = reg
        .req(
            Method::PUT,
            &format!("/v2/sha512m/manifests/{digest}?tag=long"),
        )
        .header("content-type", OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text(resp));
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/sha512m/manifests/{digest}")
    );
    for reference in [digest.as_str(), "long"] {
        let resp = reg.get(&format!("/v2/sha512m/manifests/{reference}"));
        assert_eq!(resp.status(), 200, "{reference}");
        assert_eq!(header(&resp, "docker-content-digest"), digest);
        assert_eq!(resp.bytes().unwrap().as_ref(), bytes.as_slice());
        let resp = reg.head(&format!("/v2/sha512m/manifests/{reference}"));
        assert_eq!(header(&resp, "content-length"), bytes.len().to_string());
    }
    assert_error(
        reg.get(&format!("/v2/sha512m/manifests/{}", sha256(&bytes))),
        404,
        "MANIFEST_UNKNOWN",
    );
    // Deletable by its sha512 digest.
    assert_eq!(
        reg.delete(&format!("/v2/sha512m/manifests/{digest}"))
            .status(),
        202
    );
    assert_error(
        reg.get("/v2/sha512m/manifests/long"),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn overwriting_a_tag_moves_it() {
    let reg = Reg::start();
    let (first, first_digest) = reg.push_image("moving", "latest", b"first");
    let (second, second_digest) = reg.push_image("moving", "latest", b"second");
    assert_ne!(first_digest, second_digest);
    assert_served(&reg, "moving", "latest", &second, OCI_MANIFEST);
    assert_served(&reg, "moving", &first_digest, &first, OCI_MANIFEST);
}

#[test]
fn delete_by_tag_removes_only_the_tag() {
    let reg = Reg::start();
    let (bytes, digest) = reg.push_image("deltag", "v1", b"layer");
    let resp = reg
        .req(
            Method::PUT,
            &format!("/v2/deltag/manifests/{digest}?tag=v2"),
        )
        .header("content-type", OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);

    let resp = reg.delete("/v2/deltag/manifests/v1");
    assert_eq!(resp.status(), 202, "{}", text(resp));
    assert_error(reg.get("/v2/deltag/manifests/v1"), 404, "MANIFEST_UNKNOWN");
    assert_eq!(reg.head("/v2/deltag/manifests/v1").status(), 404);
    assert_served(&reg, "deltag", &digest, &bytes, OCI_MANIFEST);
    assert_served(&reg, "deltag", "v2", &bytes, OCI_MANIFEST);
    assert_eq!(
        json_body(reg.get("/v2/deltag/tags/list"))["tags"],
        json!(["v2"])
    );
    assert_error(
        reg.delete("/v2/deltag/manifests/v1"),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        reg.delete("/v2/deltag/manifests/never"),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn delete_by_digest_removes_the_manifest_and_its_tags() {
    let reg = Reg::start();
    let (bytes, digest) = reg.push_image("deldigest", "v1", b"layer");
    for tag in ["v1.0", "latest"] {
        reg.push_manifest("deldigest", tag, OCI_MANIFEST, &bytes);
    }
    let (other, other_digest) = reg.push_image("deldigest", "other", b"other layer");

    let resp = reg.delete(&format!("/v2/deldigest/manifests/{digest}"));
    assert_eq!(resp.status(), 202, "{}", text(resp));
    assert_error(
        reg.get(&format!("/v2/deldigest/manifests/{digest}")),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_eq!(
        reg.head(&format!("/v2/deldigest/manifests/{digest}"))
            .status(),
        404
    );
    for tag in ["v1", "v1.0", "latest"] {
        assert_error(
            reg.get(&format!("/v2/deldigest/manifests/{tag}")),
            404,
            "MANIFEST_UNKNOWN",
        );
    }
    assert_eq!(
        json_body(reg.get("/v2/deldigest/tags/list"))["tags"],
        json!(["other"])
    );
    assert_served(&reg, "deldigest", "other", &other, OCI_MANIFEST);
    assert_served(&reg, "deldigest", &other_digest, &other, OCI_MANIFEST);
    assert_error(
        reg.delete(&format!("/v2/deldigest/manifests/{digest}")),
        404,
        "MANIFEST_UNKNOWN",
    );

    // Pushing it again restores it.
    reg.push_manifest("deldigest", "again", OCI_MANIFEST, &bytes);
    assert_served(&reg, "deldigest", &digest, &bytes, OCI_MANIFEST);
}

#[test]
fn unknown_manifests() {
    let reg = Reg::start();
    reg.push_image("known", "v1", b"layer");
    assert_error(reg.get("/v2/known/manifests/v2"), 404, "MANIFEST_UNKNOWN");
    let resp = reg.head("/v2/known/manifests/v2");
    assert_eq!(resp.status(), 404);
    assert!(resp.bytes().unwrap().is_empty());
    assert_error(
        reg.get(&format!("/v2/known/manifests/{}", sha256(b"x"))),
        404,
        "MANIFEST_UNKNOWN",
    );
    let resp = reg.get("/v2/never/pushed/manifests/v1");
    assert_eq!(resp.status(), 404);
    let code = json_body(resp)["errors"][0]["code"].clone();
    assert!(
        code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN",
        "{code}"
    );
}
