//! Blob uploads (end-4a/4b, end-5, end-6, end-13, end-14): monolithic, POST+PUT, chunked,
//! streamed, status, cancel, digest checks, empty blobs and sha512.

use oci_storage_tests::{percent_encode, sha256, sha512};
use reqwest::Method;
use reqwest::blocking::{Body, Response};

use super::{Reg, assert_error, header, pseudo_random, text, upload_id, with_query};

/// Checks a 202 answer to a PATCH (or POST): Location within the repository's uploads, and
/// `Range: 0-<offset-1>`. Answers the Location to use next.
#[track_caller]
fn accepted(resp: Response, repo: &str, offset: usize) -> String {
    assert_eq!(resp.status(), 202, "{}", text(resp));
    let location = header(&resp, "location");
    assert!(
        location.starts_with(&format!("/v2/{repo}/blobs/uploads/")),
        "{location}"
    );
    if offset > 0 {
        assert_eq!(header(&resp, "range"), format!("0-{}", offset - 1));
    }
    assert_eq!(header(&resp, "docker-upload-uuid"), upload_id(&location));
    location
}

/// Checks a 201 answer to a completed upload and that the blob is served whole.
#[track_caller]
fn created(reg: &Reg, resp: Response, repo: &str, digest: &str, content: &[u8]) {
    assert_eq!(resp.status(), 201, "{}", text(resp));
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/{repo}/blobs/{digest}")
    );
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    let got = reg.get(&format!("/v2/{repo}/blobs/{digest}"));
    assert_eq!(got.status(), 200);
    assert_eq!(header(&got, "docker-content-digest"), digest);
    let body = got.bytes().unwrap();
    assert_eq!(body.len(), content.len());
    assert!(body.as_ref() == content, "served content differs");
}

fn patch(reg: &Reg, location: &str, range: Option<(usize, usize)>, bytes: &[u8]) -> Response {
    let mut req = reg
        .req(Method::PATCH, location)
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec());
    if let Some((start, end)) = range {
        req = req.header("content-range", format!("{start}-{end}"));
    }
    req.send().unwrap()
}

fn patch_with_range(reg: &Reg, location: &str, range: &str, bytes: &[u8]) -> Response {
    reg.req(Method::PATCH, location)
        .header("content-range", range)
        .body(bytes.to_vec())
        .send()
        .unwrap()
}

fn put(reg: &Reg, location: &str, digest: &str, body: Option<&[u8]>) -> Response {
    let req = reg.req(
        Method::PUT,
        &with_query(location, &format!("digest={digest}")),
    );
    match body {
        Some(b) => req
            .header("content-type", "application/octet-stream")
            .body(b.to_vec()),
        None => req,
    }
    .send()
    .unwrap()
}

#[test]
fn monolithic_post() {
    let reg = Reg::start();
    let content = pseudo_random(1, 100_000);
    let digest = sha256(&content);
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/mono/blobs/uploads/?digest={digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(content.clone())
        .send()
        .unwrap();
    created(&reg, resp, "mono", &digest, &content);

    // Pushing the same content again is fine and changes nothing.
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/mono/blobs/uploads/?digest={digest}"),
        )
        .body(content.clone())
        .send()
        .unwrap();
    created(&reg, resp, "mono", &digest, &content);
}

#[test]
fn post_then_put_with_the_whole_body() {
    let reg = Reg::start();
    let content = pseudo_random(2, 70_000);
    let digest = sha256(&content);
    let resp = reg
        .req(Method::POST, "/v2/two/step/blobs/uploads/")
        .send()
        .unwrap();
    let location = accepted(resp, "two/step", 0);
    let resp = put(&reg, &location, &digest, Some(&content));
    created(&reg, resp, "two/step", &digest, &content);
    // The session is over.
    assert_error(reg.get(&location), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn chunked_upload_with_content_range_then_empty_put() {
    let reg = Reg::start();
    let content = pseudo_random(3, 3 * 65_536 + 123);
    let digest = sha256(&content);
    let mut location = reg.start_upload("chunks");
    let mut offset = 0;
    for chunk in content.chunks(65_536) {
        let end = offset + chunk.len() - 1;
        location = accepted(
            patch(&reg, &location, Some((offset, end)), chunk),
            "chunks",
            end + 1,
        );
        offset = end + 1;
    }
    // Nothing visible before the final PUT.
    assert_eq!(
        reg.head(&format!("/v2/chunks/blobs/{digest}")).status(),
        404
    );
    let resp = put(&reg, &location, &digest, None);
    created(&reg, resp, "chunks", &digest, &content);
    assert_error(reg.get(&location), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn chunked_upload_with_last_chunk_in_put() {
    let reg = Reg::start();
    let content = pseudo_random(4, 50_000);
    let digest = sha256(&content);

    // Last chunk with its Content-Range.
    let location = reg.start_upload("lastchunk");
    let location = accepted(
        patch(&reg, &location, Some((0, 29_999)), &content[..30_000]),
        "lastchunk",
        30_000,
    );
    let resp = reg
        .req(
            Method::PUT,
            &with_query(&location, &format!("digest={digest}")),
        )
        .header("content-type", "application/octet-stream")
        .header("content-range", "30000-49999")
        .body(content[30_000..].to_vec())
        .send()
        .unwrap();
    created(&reg, resp, "lastchunk", &digest, &content);

    // Last chunk without Content-Range.
    let content = pseudo_random(5, 40_000);
    let digest = sha256(&content);
    let location = reg.start_upload("lastchunk");
    let location = accepted(
        patch(&reg, &location, Some((0, 9_999)), &content[..10_000]),
        "lastchunk",
        10_000,
    );
    let location = accepted(
        patch(
            &reg,
            &location,
            Some((10_000, 19_999)),
            &content[10_000..20_000],
        ),
        "lastchunk",
        20_000,
    );
    let resp = put(&reg, &location, &digest, Some(&content[20_000..]));
    created(&reg, resp, "lastchunk", &digest, &content);
}

#[test]
fn streamed_patches_without_content_range() {
    let reg = Reg::start();
    let content = pseudo_random(6, 1_500_000);
    let digest = sha256(&content);
    let location = reg.start_upload("streamed");
    // A body of unknown length (chunked transfer encoding), as `docker push` sends it.
    let first = content[..1_000_000].to_vec();
    let resp = reg
        .req(Method::PATCH, &location)
        .header("content-type", "application/octet-stream")
        .body(Body::new(std::io::Cursor::new(first)))
        .send()
        .unwrap();
    assert!(resp.headers().get("content-range").is_none());
    let location = accepted(resp, "streamed", 1_000_000);
    // A second one continues where the first ended.
    let location = accepted(
        patch(&reg, &location, None, &content[1_000_000..]),
        "streamed",
        content.len(),
    );
    let status = reg.get(&location);
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), format!("0-{}", content.len() - 1));
    let resp = put(&reg, &location, &digest, None);
    created(&reg, resp, "streamed", &digest, &content);
}

#[test]
fn out_of_order_chunk_is_refused_and_the_session_survives() {
    let reg = Reg::start();
    let content = pseudo_random(7, 30);
    let digest = sha256(&content);
    let location = reg.start_upload("order");
    let location = accepted(
        patch(&reg, &location, Some((0, 9)), &content[..10]),
        "order",
        10,
    );
    // A gap.
    let resp = patch(&reg, &location, Some((20, 29)), &content[20..]);
    assert_eq!(resp.status(), 416, "{}", text(resp));
    // An overlap.
    let resp = patch(&reg, &location, Some((5, 14)), &content[5..15]);
    assert_eq!(resp.status(), 416, "{}", text(resp));
    // A repeat of the first chunk.
    let resp = patch(&reg, &location, Some((0, 9)), &content[..10]);
    assert_eq!(resp.status(), 416, "{}", text(resp));
    // A Content-Range that disagrees with the chunk's length.
    let resp = patch(&reg, &location, Some((10, 29)), &content[10..20]);
    assert_eq!(resp.status(), 416, "{}", text(resp));
    // Ranges at the edge of the number space, with a known and an unknown body length.
    for range in [
        "0-18446744073709551615",
        "10-18446744073709551615",
        "10-18446744073709551614",
    ] {
        let resp = reg
            .req(Method::PATCH, &location)
            .header("content-range", range)
            .body(content[10..].to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 416, "{range}: {}", text(resp));
        let resp = reg
            .req(Method::PATCH, &location)
            .header("content-range", range)
            .body(Body::new(std::io::Cursor::new(content[10..].to_vec())))
            .send()
            .unwrap();
        assert!(resp.status().is_client_error(), "{range}: {}", text(resp));
    }
    // Garbage.
    for range in ["abc", "5-", "-5", "9-3"] {
        let resp = patch_with_range(&reg, &location, range, &content[10..]);
        assert_eq!(resp.status(), 416, "{range}: {}", text(resp));
    }
    // The session still stands at 10 bytes and carries on.
    let status = reg.get(&location);
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), "0-9");
    let location = accepted(
        patch(&reg, &location, Some((10, 29)), &content[10..]),
        "order",
        30,
    );
    let resp = put(&reg, &location, &digest, None);
    created(&reg, resp, "order", &digest, &content);
}

#[test]
fn upload_status_reports_progress() {
    let reg = Reg::start();
    let location = reg.start_upload("status/repo");
    let resp = reg.get(&location);
    assert_eq!(resp.status(), 204, "{}", text(resp));
    assert_eq!(header(&resp, "location"), location);
    assert_eq!(header(&resp, "docker-upload-uuid"), upload_id(&location));
    assert!(resp.bytes().unwrap().is_empty());

    let location = accepted(
        patch(&reg, &location, Some((0, 1233)), &[7u8; 1234]),
        "status/repo",
        1234,
    );
    for _ in 0..2 {
        // Asking twice changes nothing.
        let resp = reg.get(&location);
        assert_eq!(resp.status(), 204);
        assert_eq!(header(&resp, "range"), "0-1233");
        assert_eq!(header(&resp, "location"), location);
    }
}

#[test]
fn cancelled_upload_is_gone() {
    let reg = Reg::start();
    let location = reg.start_upload("cancel");
    let location = accepted(
        patch(&reg, &location, Some((0, 99)), &[1u8; 100]),
        "cancel",
        100,
    );
    let resp = reg.delete(&location);
    assert_eq!(resp.status(), 204, "{}", text(resp));
    assert_error(reg.get(&location), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_error(
        patch(&reg, &location, Some((100, 109)), &[1u8; 10]),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    assert_error(
        put(&reg, &location, &sha256(&[1u8; 100]), None),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    assert_error(reg.delete(&location), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        reg.head(&format!("/v2/cancel/blobs/{}", sha256(&[1u8; 100])))
            .status(),
        404
    );
}

#[test]
fn wrong_digest_is_refused_and_nothing_is_stored() {
    let reg = Reg::start();
    let content = pseudo_random(8, 20_000);
    let actual = sha256(&content);
    let claimed = sha256(b"something else");
    let blob_status = |d: &str| reg.head(&format!("/v2/wrong/blobs/{d}")).status();

    // Monolithic POST.
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/wrong/blobs/uploads/?digest={claimed}"),
        )
        .body(content.clone())
        .send()
        .unwrap();
    assert_error(resp, 400, "DIGEST_INVALID");
    assert_eq!(blob_status(&claimed), 404);
    assert_eq!(blob_status(&actual), 404);

    // POST then PUT with the whole body.
    let location = reg.start_upload("wrong");
    assert_error(
        put(&reg, &location, &claimed, Some(&content)),
        400,
        "DIGEST_INVALID",
    );
    assert_eq!(blob_status(&claimed), 404);
    assert_eq!(blob_status(&actual), 404);

    // Chunked, with the final PUT carrying the wrong digest.
    let location = reg.start_upload("wrong");
    let location = accepted(
        patch(&reg, &location, Some((0, 9_999)), &content[..10_000]),
        "wrong",
        10_000,
    );
    let location = accepted(
        patch(&reg, &location, Some((10_000, 19_999)), &content[10_000..]),
        "wrong",
        20_000,
    );
    assert_error(put(&reg, &location, &claimed, None), 400, "DIGEST_INVALID");
    assert_eq!(blob_status(&claimed), 404);
    assert_eq!(blob_status(&actual), 404);
    assert_eq!(reg.get(&format!("/v2/wrong/blobs/{claimed}")).status(), 404);

    // The right digest still goes through afterwards.
    let digest = reg.push_blob("wrong", &content);
    assert_eq!(digest, actual);
    assert_eq!(blob_status(&actual), 200);
    assert_eq!(blob_status(&claimed), 404);
}

#[test]
fn missing_digest_on_put_is_refused() {
    let reg = Reg::start();
    let location = reg.start_upload("nodigest");
    let resp = reg
        .req(Method::PUT, &location)
        .body(b"abc".to_vec())
        .send()
        .unwrap();
    assert_error(resp, 400, "DIGEST_INVALID");
}

#[test]
fn zero_byte_blob() {
    let reg = Reg::start();
    let empty = sha256(b"");
    assert_eq!(
        empty,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/zero/blobs/uploads/?digest={empty}"),
        )
        .body(Vec::new())
        .send()
        .unwrap();
    created(&reg, resp, "zero", &empty, b"");
    let resp = reg.head(&format!("/v2/zero/blobs/{empty}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "0");
    assert_eq!(header(&resp, "docker-content-digest"), empty);

    // Through a session closed by a body-less PUT.
    let location = reg.start_upload("zero/session");
    let resp = put(&reg, &location, &empty, None);
    created(&reg, resp, "zero/session", &empty, b"");

    // A wrong digest for nothing is still wrong.
    let location = reg.start_upload("zero/wrong");
    assert_error(
        put(&reg, &location, &sha256(b"x"), None),
        400,
        "DIGEST_INVALID",
    );
}

#[test]
fn sha512_blobs() {
    let reg = Reg::start();
    let content = pseudo_random(9, 300_000);
    let digest = sha512(&content);

    // Monolithic.
    let resp = reg
        .req(
            Method::POST,
            &format!("/v2/sha/blobs/uploads/?digest={digest}"),
        )
        .body(content.clone())
        .send()
        .unwrap();
    created(&reg, resp, "sha", &digest, &content);
    let resp = reg.head(&format!("/v2/sha/blobs/{digest}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), content.len().to_string());
    // Not served under its sha256 name.
    assert_eq!(
        reg.head(&format!("/v2/sha/blobs/{}", sha256(&content)))
            .status(),
        404
    );

    // A chunked session that hashes with sha512 from the start.
    let content = pseudo_random(10, 200_000);
    let digest = sha512(&content);
    let resp = reg
        .req(
            Method::POST,
            "/v2/sha/blobs/uploads/?digest-algorithm=sha512",
        )
        .send()
        .unwrap();
    let location = accepted(resp, "sha", 0);
    let location = accepted(
        patch(&reg, &location, Some((0, 99_999)), &content[..100_000]),
        "sha",
        100_000,
    );
    let location = accepted(
        patch(
            &reg,
            &location,
            Some((100_000, 199_999)),
            &content[100_000..],
        ),
        "sha",
        200_000,
    );
    let resp = put(&reg, &location, &digest, None);
    created(&reg, resp, "sha", &digest, &content);

    // The digest given at the end decides, whatever the session hashed with.
    for (algorithm, digest) in [
        ("sha512", sha256(&content[..1000])),
        ("sha256", sha512(&content[..1000])),
    ] {
        let resp = reg
            .req(
                Method::POST,
                &format!("/v2/sha/blobs/uploads/?digest-algorithm={algorithm}"),
            )
            .send()
            .unwrap();
        let location = accepted(resp, "sha", 0);
        let location = accepted(
            patch(&reg, &location, Some((0, 999)), &content[..1000]),
            "sha",
            1000,
        );
        let resp = put(&reg, &location, &digest, None);
        created(&reg, resp, "sha", &digest, &content[..1000]);
    }

    // A wrong sha512 digest is refused like a wrong sha256 one.
    let location = reg.start_upload("sha");
    let wrong = sha512(b"other");
    assert_error(
        put(&reg, &location, &wrong, Some(b"content")),
        400,
        "DIGEST_INVALID",
    );
    assert_eq!(reg.head(&format!("/v2/sha/blobs/{wrong}")).status(), 404);

    // Unsupported algorithms are refused when the session opens.
    let resp = reg
        .req(Method::POST, "/v2/sha/blobs/uploads/?digest-algorithm=md5")
        .send()
        .unwrap();
    assert_error(resp, 400, "DIGEST_INVALID");
}

#[test]
fn invalid_digest_strings_are_refused() {
    let reg = Reg::start();
    let hex64 = "a".repeat(64);
    let bad = [
        "sha256:abc".to_owned(),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", "g".repeat(64)),
        format!("sha256:{hex64}a"),
        format!("md5:{}", "a".repeat(32)),
        format!("SHA256:{hex64}"),
        hex64.clone(),
        "sha256:".to_owned(),
        format!(":{hex64}"),
        format!("sha512:{hex64}"),
        String::new(),
    ];
    let location = reg.start_upload("baddigest");
    for d in &bad {
        let query = format!("digest={}", percent_encode(d));
        let resp = reg
            .req(
                Method::POST,
                &format!("/v2/baddigest/blobs/uploads/?{query}"),
            )
            .body(b"content".to_vec())
            .send()
            .unwrap();
        assert_error(resp, 400, "DIGEST_INVALID");
        let resp = reg
            .req(Method::PUT, &with_query(&location, &query))
            .body(b"content".to_vec())
            .send()
            .unwrap();
        assert_error(resp, 400, "DIGEST_INVALID");
    }
    // The session was not consumed by the refusals.
    let resp = put(&reg, &location, &sha256(b"content"), Some(b"content"));
    created(&reg, resp, "baddigest", &sha256(b"content"), b"content");
}

#[test]
fn upload_ids_belong_to_their_repository() {
    let reg = Reg::start();
    let location = reg.start_upload("owner/repo");
    let location = accepted(
        patch(&reg, &location, Some((0, 4)), b"hello"),
        "owner/repo",
        5,
    );
    let id = upload_id(&location);
    let other = format!("/v2/intruder/repo/blobs/uploads/{id}");
    assert_error(reg.get(&other), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_error(
        patch(&reg, &other, Some((5, 9)), b"world"),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    assert_error(
        put(&reg, &other, &sha256(b"hello"), None),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    assert_error(reg.delete(&other), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        reg.head(&format!("/v2/intruder/repo/blobs/{}", sha256(b"hello")))
            .status(),
        404
    );

    // Ids the registry never issued.
    for bogus in [
        "0123456789abcdef0123456789abcdef",
        "not-an-id",
        "ffffffffffffffffffffffffffffffffffffffffffffffff",
    ] {
        let resp = reg.get(&format!("/v2/owner/repo/blobs/uploads/{bogus}"));
        assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN");
    }

    // The owner's session is untouched.
    let resp = reg.get(&location);
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range"), "0-4");
    let resp = put(&reg, &location, &sha256(b"hello world"), Some(b" world"));
    created(
        &reg,
        resp,
        "owner/repo",
        &sha256(b"hello world"),
        b"hello world",
    );
    assert_error(reg.get(&location), 404, "BLOB_UPLOAD_UNKNOWN");
}
