//! Blob reads (end-2), ranges, repository isolation, cross-repository mount (end-11) and
//! blob delete (end-10).

use oci_storage_tests::sha256;
use reqwest::Method;

use super::{
    OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Reg, assert_error, header, image_manifest, pseudo_random,
    text, upload_id, with_query,
};

#[test]
fn get_and_head() {
    let reg = Reg::start();
    let content = pseudo_random(20, 123_457);
    let digest = reg.push_blob("reads", &content);
    let path = format!("/v2/reads/blobs/{digest}");

    let resp = reg.head(&path);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(header(&resp, "content-length"), "123457");
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert!(resp.bytes().unwrap().is_empty());

    let resp = reg.get(&path);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(header(&resp, "content-length"), "123457");
    let body = resp.bytes().unwrap();
    assert!(body.as_ref() == content.as_slice());
}

#[test]
fn byte_ranges() {
    let reg = Reg::start();
    let content = pseudo_random(21, 1000);
    let digest = reg.push_blob("ranges", &content);
    let path = format!("/v2/ranges/blobs/{digest}");
    let get_range = |range: &str| {
        reg.req(Method::GET, &path)
            .header("range", range)
            .send()
            .unwrap()
    };

    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=0-0", 0, 0),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
    ] {
        let resp = get_range(range);
        assert_eq!(resp.status(), 206, "{range}: {}", text(resp));
        assert_eq!(
            header(&resp, "content-range"),
            format!("bytes {start}-{end}/1000"),
            "{range}"
        );
        assert_eq!(
            header(&resp, "content-length"),
            (end - start + 1).to_string()
        );
        assert_eq!(header(&resp, "docker-content-digest"), digest);
        let body = resp.bytes().unwrap();
        assert_eq!(body.as_ref(), &content[start..=end], "{range}");
    }

    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let resp = get_range(range);
        assert_eq!(resp.status(), 416, "{range}: {}", text(resp));
        assert_eq!(header(&resp, "content-range"), "bytes */1000", "{range}");
    }

    // A range on an unknown blob is still a 404.
    let resp = reg
        .req(
            Method::GET,
            &format!("/v2/ranges/blobs/{}", sha256(b"nope")),
        )
        .header("range", "bytes=0-1")
        .send()
        .unwrap();
    assert_error(resp, 404, "BLOB_UNKNOWN");
}

#[test]
fn unknown_blob() {
    let reg = Reg::start();
    let digest = sha256(b"never pushed");
    let body = assert_error(
        reg.get(&format!("/v2/unknown/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    assert_eq!(body["errors"][0]["detail"]["digest"], digest);
    let resp = reg.head(&format!("/v2/unknown/blobs/{digest}"));
    assert_eq!(resp.status(), 404);
    assert!(resp.bytes().unwrap().is_empty(), "HEAD has no body");
    assert_error(
        reg.get("/v2/unknown/blobs/sha256:zz"),
        400,
        "DIGEST_INVALID",
    );
    assert_error(
        reg.get(&format!("/v2/unknown/blobs/md5:{}", "0".repeat(32))),
        400,
        "DIGEST_INVALID",
    );
}

#[test]
fn blobs_are_isolated_per_repository_until_mounted() {
    let reg = Reg::start();
    let content = pseudo_random(22, 4096);
    let digest = reg.push_blob("team-a/app", &content);
    assert_eq!(
        reg.head(&format!("/v2/team-a/app/blobs/{digest}")).status(),
        200
    );
    assert_error(
        reg.get(&format!("/v2/team-b/app/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    assert_eq!(
        reg.head(&format!("/v2/team-b/app/blobs/{digest}")).status(),
        404
    );

    // A manifest in B cannot reference A's blob either.
    let manifest = image_manifest(OCI_CONFIG, &digest, content.len(), &[]);
    assert_error(
        reg.put_manifest("team-b/app", "v1", OCI_MANIFEST, &manifest),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );

    // Mount from a repository that does not have it (although the registry does): an upload
    // session instead, and still nothing to read.
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/team-b/app/blobs/uploads/?mount={digest}&from=team-c/app"),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", text(resp));
    let location = header(&resp, "location");
    assert!(location.starts_with("/v2/team-b/app/blobs/uploads/"));
    assert_eq!(header(&resp, "docker-upload-uuid"), upload_id(&location));
    assert_eq!(
        reg.head(&format!("/v2/team-b/app/blobs/{digest}")).status(),
        404
    );
    // That session is a working one.
    let other = b"uploaded instead".to_vec();
    let resp = reg
        .req(
            Method::PUT,
            &with_query(&location, &format!("digest={}", sha256(&other))),
        )
        .body(other.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text(resp));

    // Mount of a digest nobody has, or with an unparsable digest or source: a session too.
    for query in [
        format!("mount={}&from=team-a/app", sha256(b"nobody")),
        "mount=sha256:zz&from=team-a/app".to_owned(),
        format!("mount={digest}&from=Team-A"),
    ] {
        let resp = reg
            .req(
                Method::POST,
                &format!("/v2/team-b/app/blobs/uploads/?{query}"),
            )
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{query}: {}", text(resp));
        assert!(header(&resp, "location").starts_with("/v2/team-b/app/blobs/uploads/"));
    }
    assert_eq!(
        reg.head(&format!("/v2/team-b/app/blobs/{digest}")).status(),
        404
    );

    // Mount from the repository that has it.
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/team-b/app/blobs/uploads/?mount={digest}&from=team-a/app"),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text(resp));
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/team-b/app/blobs/{digest}")
    );
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    let resp = reg.get(&format!("/v2/team-b/app/blobs/{digest}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), content.as_slice());
    assert_eq!(
        reg.push_manifest("team-b/app", "v1", OCI_MANIFEST, &manifest),
        sha256(&manifest)
    );
}

#[test]
fn delete_blob() {
    let reg = Reg::start();
    let content = pseudo_random(23, 2048);
    let digest = reg.push_blob("del/a", &content);
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/del/b/blobs/uploads/?mount={digest}&from=del/a"),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);

    let resp = reg.delete(&format!("/v2/del/a/blobs/{digest}"));
    assert_eq!(resp.status(), 202, "{}", text(resp));
    assert_error(
        reg.get(&format!("/v2/del/a/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    assert_eq!(reg.head(&format!("/v2/del/a/blobs/{digest}")).status(), 404);
    assert_error(
        reg.delete(&format!("/v2/del/a/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    // A manifest can no longer reference it there.
    let manifest = image_manifest(
        OCI_CONFIG,
        &reg.push_blob("del/a", b"{}"),
        2,
        &[(OCI_LAYER, &digest, content.len())],
    );
    assert_error(
        reg.put_manifest("del/a", "v1", OCI_MANIFEST, &manifest),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );

    // The repository it was mounted into keeps it.
    let resp = reg.get(&format!("/v2/del/b/blobs/{digest}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), content.as_slice());

    // Pushing it again brings it back.
    reg.push_blob("del/a", &content);
    let resp = reg.get(&format!("/v2/del/a/blobs/{digest}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), content.as_slice());
}
