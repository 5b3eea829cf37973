//! The referrers API (end-12a/b): always an image index, `OCI-Subject` on push, entries with
//! artifactType and annotations, filtering, subjects pushed late, and deletes.

use oci_storage_tests::sha256;
use serde_json::{Value, json};

use super::{
    EMPTY_DIGEST, EMPTY_TYPE, OCI_INDEX, OCI_MANIFEST, Reg, artifact_manifest, assert_error,
    header, json_body, maybe_header, text,
};

/// GETs a referrers list; checks it is a 200 image index and answers its `manifests`, sorted
/// by digest, and the `OCI-Filters-Applied` header.
#[track_caller]
fn referrers(reg: &Reg, path: &str) -> (Vec<Value>, Option<String>) {
    let resp = reg.get(path);
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(header(&resp, "content-type"), OCI_INDEX, "{path}");
    let filters = maybe_header(&resp, "oci-filters-applied");
    let body = json_body(resp);
    assert_eq!(body["schemaVersion"], 2, "{body}");
    assert_eq!(body["mediaType"], OCI_INDEX, "{body}");
    let mut manifests = body["manifests"].as_array().expect("manifests").clone();
    manifests.sort_by_key(|m| m["digest"].as_str().unwrap_or_default().to_owned());
    (manifests, filters)
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|m| m["digest"].as_str().unwrap_or_default().to_owned());
    v
}

/// Pushes a referrer manifest (must get 201 with `OCI-Subject`); answers its digest.
fn push_referrer(
    reg: &Reg,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    subject: &str,
) -> String {
    let resp = reg.put_manifest(repo, reference, media_type, bytes);
    assert_eq!(resp.status(), 201, "{}", text(resp));
    assert_eq!(header(&resp, "oci-subject"), subject);
    header(&resp, "docker-content-digest")
}

#[test]
fn unknown_subjects_have_an_empty_list() {
    let reg = Reg::start();
    let unknown = sha256(b"no such manifest");
    let empty = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] });
    for path in [
        format!("/v2/some/repo/referrers/{unknown}"),
        format!(
            "/v2/never/pushed/referrers/{}",
            oci_storage_tests::sha512(b"x")
        ),
    ] {
        let resp = reg.get(&path);
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-type"), OCI_INDEX);
        assert!(maybe_header(&resp, "oci-filters-applied").is_none());
        assert_eq!(json_body(resp), empty, "{path}");
    }
    let (list, filters) = referrers(
        &reg,
        &format!("/v2/some/repo/referrers/{unknown}?artifactType=application/vnd.example.sbom"),
    );
    assert!(list.is_empty());
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert_error(
        reg.get("/v2/some/repo/referrers/sha256:bad"),
        400,
        "DIGEST_INVALID",
    );
}

#[test]
fn referrers_carry_artifact_type_and_annotations_and_filter() {
    let reg = Reg::start();
    let (subject_bytes, subject) = reg.push_image("refd/app", "v1", b"app layer");
    let subject_ref = Some((subject.as_str(), subject_bytes.len()));

    // An artifact with an artifactType and annotations.
    let sbom_annotations = json!({
        "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
        "com.example.format": "spdx"
    });
    let sbom = artifact_manifest(
        Some("application/vnd.example.sbom"),
        subject_ref,
        Some(sbom_annotations.clone()),
    );
    let sbom_digest = push_referrer(
        &reg,
        "refd/app",
        &sha256(&sbom),
        OCI_MANIFEST,
        &sbom,
        &subject,
    );

    // A manifest without artifactType: its config media type stands in.
    let sig_config = reg.push_blob("refd/app", br#"{"sig":"yes"}"#);
    let signature = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.example.signature.config+json", "digest": sig_config, "size": 13 },
        "layers": [{ "mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2 }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len() },
    }))
    .unwrap();
    let sig_digest = push_referrer(
        &reg,
        "refd/app",
        "signature",
        OCI_MANIFEST,
        &signature,
        &subject,
    );

    // An index as a referrer.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sbom_digest, "size": sbom.len() }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len() },
        "annotations": { "kind": "bundle" },
    }))
    .unwrap();
    let index_digest = push_referrer(&reg, "refd/app", "bundle", OCI_INDEX, &index, &subject);

    // Something unrelated that refers to nothing.
    let (_, plain) = reg.push_image("refd/app", "v2", b"other layer");

    let sbom_entry = json!({
        "mediaType": OCI_MANIFEST,
        "digest": sbom_digest,
        "size": sbom.len(),
        "artifactType": "application/vnd.example.sbom",
        "annotations": sbom_annotations,
    });
    let sig_entry = json!({
        "mediaType": OCI_MANIFEST,
        "digest": sig_digest,
        "size": signature.len(),
        "artifactType": "application/vnd.example.signature.config+json",
    });
    let index_entry = json!({
        "mediaType": OCI_INDEX,
        "digest": index_digest,
        "size": index.len(),
        "artifactType": "application/vnd.example.bundle",
        "annotations": { "kind": "bundle" },
    });
    let (list, filters) = referrers(&reg, &format!("/v2/refd/app/referrers/{subject}"));
    assert!(filters.is_none());
    assert_eq!(
        list,
        sorted(vec![
            sbom_entry.clone(),
            sig_entry.clone(),
            index_entry.clone()
        ])
    );

    for (filter, expected) in [
        ("application/vnd.example.sbom", vec![sbom_entry.clone()]),
        (
            "application/vnd.example.signature.config+json",
            vec![sig_entry],
        ),
        ("application/vnd.example.bundle", vec![index_entry]),
        ("application/vnd.example.nothing", vec![]),
    ] {
        // `+` in a query string means a space: clients encode it.
        let query = filter.replace('+', "%2B");
        let (list, filters) = referrers(
            &reg,
            &format!("/v2/refd/app/referrers/{subject}?artifactType={query}"),
        );
        assert_eq!(filters.as_deref(), Some("artifactType"), "{filter}");
        assert_eq!(list, expected, "{filter}");
    }

    // Pushing a referrer again (here under a tag) does not list it twice.
    reg.push_manifest("refd/app", "sbom", OCI_MANIFEST, &sbom);
    let (again, _) = referrers(&reg, &format!("/v2/refd/app/referrers/{subject}"));
    assert_eq!(again.len(), 3, "{again:?}");

    // The sbom is itself the subject of nothing, and the unrelated image of nothing.
    for d in [&sbom_digest, &plain] {
        let (list, _) = referrers(&reg, &format!("/v2/refd/app/referrers/{d}"));
        assert!(list.is_empty(), "{d}: {list:?}");
    }
    // Referrers are per repository.
    let (list, _) = referrers(&reg, &format!("/v2/refd/other/referrers/{subject}"));
    assert!(list.is_empty());
    // A referrer is served like any manifest.
    let resp = reg.get(&format!("/v2/refd/app/manifests/{sbom_digest}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), sbom.as_slice());
}

#[test]
fn referrer_pushed_before_its_subject() {
    let reg = Reg::start();
    reg.push_blob("early", b"{}");
    // The subject's bytes are known, but it is not pushed yet.
    let layer = reg.push_blob("early", b"late subject layer");
    let subject_bytes = super::image_manifest(
        super::OCI_CONFIG,
        EMPTY_DIGEST,
        2,
        &[(super::OCI_LAYER, &layer, 18)],
    );
    let subject = sha256(&subject_bytes);
    let referrer = artifact_manifest(
        Some("application/vnd.example.attestation"),
        Some((&subject, subject_bytes.len())),
        None,
    );
    let referrer_digest = push_referrer(
        &reg,
        "early",
        "attestation",
        OCI_MANIFEST,
        &referrer,
        &subject,
    );
    assert_error(
        reg.get(&format!("/v2/early/manifests/{subject}")),
        404,
        "MANIFEST_UNKNOWN",
    );

    let expected = vec![json!({
        "mediaType": OCI_MANIFEST,
        "digest": referrer_digest,
        "size": referrer.len(),
        "artifactType": "application/vnd.example.attestation",
    })];
    let (list, _) = referrers(&reg, &format!("/v2/early/referrers/{subject}"));
    assert_eq!(list, expected);

    reg.push_manifest("early", "subject", OCI_MANIFEST, &subject_bytes);
    let (list, _) = referrers(&reg, &format!("/v2/early/referrers/{subject}"));
    assert_eq!(list, expected);
}

#[test]
fn deleting_a_referrer_removes_it_from_the_list() {
    let reg = Reg::start();
    let (subject_bytes, subject) = reg.push_image("gone", "v1", b"layer");
    let subject_ref = Some((subject.as_str(), subject_bytes.len()));
    let keep = artifact_manifest(Some("application/vnd.example.keep"), subject_ref, None);
    let keep_digest = push_referrer(&reg, "gone", "keep", OCI_MANIFEST, &keep, &subject);
    let drop = artifact_manifest(Some("application/vnd.example.drop"), subject_ref, None);
    let drop_digest = push_referrer(&reg, "gone", "drop", OCI_MANIFEST, &drop, &subject);
    let (list, _) = referrers(&reg, &format!("/v2/gone/referrers/{subject}"));
    assert_eq!(list.len(), 2);

    // Untagging is not deleting.
    assert_eq!(reg.delete("/v2/gone/manifests/drop").status(), 202);
    let (list, _) = referrers(&reg, &format!("/v2/gone/referrers/{subject}"));
    assert_eq!(list.len(), 2);

    let resp = reg.delete(&format!("/v2/gone/manifests/{drop_digest}"));
    assert_eq!(resp.status(), 202, "{}", text(resp));
    let (list, _) = referrers(&reg, &format!("/v2/gone/referrers/{subject}"));
    let digests: Vec<&str> = list.iter().map(|m| m["digest"].as_str().unwrap()).collect();
    assert_eq!(digests, [keep_digest.as_str()]);
    let (list, filters) = referrers(
        &reg,
        &format!("/v2/gone/referrers/{subject}?artifactType=application/vnd.example.drop"),
    );
    assert!(list.is_empty());
    assert_eq!(filters.as_deref(), Some("artifactType"));
}
