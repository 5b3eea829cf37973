//! Nothing accepted that cannot be read back: every stored record is bounded when it is
//! written (a clear 4xx then), manifests the spec refuses are refused, and a record that
//! cannot be read (damaged, or written by an older version) is skipped, deletable, and never a
//! 500 for anyone else.

use reqwest::Method;
use serde_json::{Value, json};

use crate::protocol::{OCI_MANIFEST, Reg, artifact_manifest, assert_error, json_body, text};

#[test]
fn manifests_with_bad_media_types_duplicate_keys_or_deep_nesting_are_invalid() {
    let reg = Reg::start();
    let (_, subject) = reg.push_image("app", "v1", b"layer");
    let mut long = artifact_manifest(None, None, None);
    let doc: Value = serde_json::from_slice(&long).unwrap();
    let with_type = |t: &str| {
        let mut d = doc.clone();
        d["mediaType"] = json!(t);
        serde_json::to_vec(&d).unwrap()
    };
    long = with_type(&format!("application/{}", "x".repeat(70_000)));
    for bytes in [
        long,
        with_type("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        with_type("application/vnd.oci.image.manifest.v1+json "),
        artifact_manifest(Some("not a media type"), None, None),
    ] {
        let resp = reg.put_manifest("app", "bad", "application/json", &bytes);
        assert_error(resp, 400, "MANIFEST_INVALID");
    }

    let text_of = |m: &[u8]| String::from_utf8(m.to_vec()).unwrap();
    let base = text_of(&artifact_manifest(None, None, Some(json!({"k": "1"}))));
    let duplicate = base.replace(r#""k":"1""#, r#""k":"1","k":"2""#);
    assert_ne!(base, duplicate);
    let resp = reg.put_manifest("app", "dup", OCI_MANIFEST, duplicate.as_bytes());
    let body = assert_error(resp, 400, "MANIFEST_INVALID");
    assert!(body.to_string().contains("twice"), "{body}");

    let deep = base.replace(
        r#""k":"1""#,
        &format!(r#""k":"1","x":{}0{}"#, "[".repeat(5000), "]".repeat(5000)),
    );
    let resp = reg.put_manifest("app", "deep", OCI_MANIFEST, deep.as_bytes());
    assert_error(resp, 400, "MANIFEST_INVALID");

    // Nothing of them was kept; the tags and the subject's referrers are unaffected.
    for tag in ["bad", "dup", "deep"] {
        assert_error(
            reg.get(&format!("/v2/app/manifests/{tag}")),
            404,
            "MANIFEST_UNKNOWN",
        );
    }
    assert_eq!(
        reg.get(&format!("/v2/app/referrers/{subject}")).status(),
        200
    );
}

#[test]
fn a_referrer_too_large_for_its_entry_is_refused_and_the_listing_keeps_working() {
    let reg = Reg::start();
    let (subject_bytes, subject) = reg.push_image("app", "v1", b"layer");
    let size = subject_bytes.len();
    let small = artifact_manifest(
        Some("application/vnd.example.sig"),
        Some((&subject, size)),
        Some(json!({"note": "fine"})),
    );
    reg.push_manifest(
        "app",
        &oci_storage_tests::sha256(&small),
        OCI_MANIFEST,
        &small,
    );
    // 2 MiB of annotations: within the 4 MiB manifest limit, over a referrer entry's bound.
    let huge = artifact_manifest(
        Some("application/vnd.example.sbom"),
        Some((&subject, size)),
        Some(json!({"blob": "a".repeat(2 * 1024 * 1024)})),
    );
    let resp = reg.put_manifest(
        "app",
        &oci_storage_tests::sha256(&huge),
        OCI_MANIFEST,
        &huge,
    );
    let body = assert_error(resp, 400, "MANIFEST_INVALID");
    assert!(body.to_string().contains("referrer entry"), "{body}");

    let listing = json_body(reg.get(&format!("/v2/app/referrers/{subject}")));
    let manifests = listing["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{listing}");
    assert_eq!(manifests[0]["annotations"]["note"], "fine");
}

/// Records as an older version or a damaged disk may have left them: the registry reads
/// around them and lets them be removed.
#[test]
fn records_that_cannot_be_read_are_skipped_and_can_be_removed() {
    let reg = Reg::start();
    let (subject_bytes, subject) = reg.push_image("app", "v1", b"layer");
    reg.push_image("app", "v2", b"layer");
    let referrer = artifact_manifest(None, Some((&subject, subject_bytes.len())), None);
    let referrer_digest = oci_storage_tests::sha256(&referrer);
    reg.push_manifest("app", &referrer_digest, OCI_MANIFEST, &referrer);
    let data = reg.server.data_dir();
    let repo = data.join("repositories/app");

    // A tag link far over its bound, and a referrer entry that is not JSON.
    std::fs::write(repo.join("_tags/v2"), vec![b' '; 100_000]).unwrap();
    let (alg, hex) = subject.split_once(':').unwrap();
    let (ralg, rhex) = referrer_digest.split_once(':').unwrap();
    let entry = repo.join(format!("_referrers/{alg}/{hex}/{ralg}-{rhex}"));
    std::fs::write(&entry, b"not json").unwrap();

    let listing = json_body(reg.get(&format!("/v2/app/referrers/{subject}")));
    assert_eq!(listing["manifests"], json!([]), "the bad entry is skipped");
    let resp = reg.get("/v2/app/tags/list");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        reg.get("/v2/app/manifests/v1").status(),
        200,
        "other tags unaffected"
    );
    // Deleting a manifest by digest reads every tag: the unreadable one does not stop it.
    let resp = reg.delete(&format!("/v2/app/manifests/{referrer_digest}"));
    assert_eq!(resp.status(), 202, "{}", text(resp));
    // The unreadable tag itself can be deleted, or pushed over.
    let resp = reg.delete("/v2/app/manifests/v2");
    assert_eq!(resp.status(), 202, "{}", text(resp));
    assert_eq!(reg.get("/v2/app/manifests/v2").status(), 404);
    let logs = reg.server.logs();
    assert!(
        logs.contains("cannot be read"),
        "a log line names it: {logs}"
    );
}

#[test]
fn api_tokens_are_bounded_strictly_typed_and_an_unreadable_one_can_be_revoked() {
    let config = format!(
        "{}  admins: [{}]\n",
        oci_storage_tests::default_config(),
        oci_storage_tests::USER
    );
    let reg = Reg::with(oci_storage_tests::Server::start_with(
        crate::BIN,
        &config,
        &[],
    ));
    let create = |body: Value| {
        reg.req(Method::POST, "/api/v1/tokens")
            .json(&body)
            .send()
            .unwrap()
    };
    let problem = |resp: reqwest::blocking::Response, status: u16| {
        assert_eq!(resp.status(), status);
        assert!(
            crate::protocol::header(&resp, "content-type").starts_with("application/problem+json")
        );
        json_body(resp)
    };
    // Numbers where strings belong.
    problem(
        create(json!({"name": 123, "repositories": ["a/**"], "actions": ["pull"]})),
        400,
    );
    problem(
        create(json!({"name": "ci", "repositories": [42], "actions": ["pull"]})),
        400,
    );
    // Long patterns, repeated actions.
    let long = "a".repeat(300);
    problem(
        create(json!({"name": "ci", "repositories": [long], "actions": ["pull"]})),
        400,
    );
    let many = vec!["pull"; 1000];
    problem(
        create(json!({"name": "ci", "repositories": ["a/**"], "actions": many})),
        400,
    );
    // A body over the API's bound (small enough to be written whole before the answer, which
    // comes from the declared length).
    let resp = reg
        .req(Method::POST, "/api/v1/tokens")
        .header("content-type", "application/json")
        .body(vec![b' '; 70 * 1024])
        .send()
        .unwrap();
    problem(resp, 413);
    // The largest token the API accepts is stored and read back.
    let patterns: Vec<String> = (0..100)
        .map(|i| format!("{i}/{}", "b".repeat(250)))
        .collect();
    let resp = create(
        json!({"name": "big", "repositories": patterns, "actions": ["pull", "push", "delete"]}),
    );
    assert_eq!(resp.status(), 201, "{}", text(resp));
    let listed = json_body(reg.get("/api/v1/tokens"));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // A record an older version wrote over today's bound.
    let dir = reg.server.data_dir().join("system/api-tokens");
    std::fs::write(dir.join("00112233aabbccdd.json"), vec![b' '; 200_000]).unwrap();
    let listed = json_body(reg.get("/api/v1/tokens"));
    assert_eq!(listed.as_array().unwrap().len(), 1, "skipped: {listed}");
    let resp = reg.delete("/api/v1/tokens/00112233aabbccdd");
    assert_eq!(
        resp.status(),
        204,
        "an administrator removes it: {}",
        text(resp)
    );
    assert!(!dir.join("00112233aabbccdd.json").exists());
}

/// index.yaml is parsed by helm, which wants timestamps where it says `created`: a chart
/// pushed with a `created` annotation that is not one is listed with its push time.
#[test]
fn a_chart_created_annotation_that_is_not_a_timestamp_is_not_listed() {
    let reg = Reg::start();
    let chart = crate::helm_repo::tgz(&[(
        "web/Chart.yaml",
        b"apiVersion: v2\nname: web\nversion: 1.0.0\n".to_vec(),
    )]);
    let config = br#"{"apiVersion":"v2","name":"web","version":"1.0.0"}"#;
    let config_digest = reg.push_blob("charts/web", config);
    let chart_digest = reg.push_blob("charts/web", &chart);
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": chart_digest, "size": chart.len()}],
        "annotations": {"org.opencontainers.image.created": "zzz"},
    });
    reg.push_manifest(
        "charts/web",
        "1.0.0",
        OCI_MANIFEST,
        manifest.to_string().as_bytes(),
    );
    let index = text(reg.get("/index.yaml"));
    assert!(index.contains("name: web"), "{index}");
    assert!(!index.contains("zzz"), "{index}");
}
