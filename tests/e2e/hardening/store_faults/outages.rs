//! The store down (each way it can go) or hung, with no transfer under way: what every kind of
//! request gets meanwhile, and that the registry recovers by itself.

use std::thread;
use std::time::Duration;

use oci_storage_tests::fault_proxy::Fault;
use oci_storage_tests::{eventually, sha256};
use reqwest::Method;
use reqwest::blocking::RequestBuilder;

use super::MIB;
use super::setup::{Image, Setup};
use crate::protocol::{OCI_CONFIG, OCI_MANIFEST, image_manifest, pseudo_random};

/// What a request must get while the store is down.
enum Expect {
    /// A 5xx with OCI error JSON.
    Error,
    /// That, or 200 with these bytes (a manifest this process has cached).
    ErrorOr(Vec<u8>),
    /// A 5xx (HEAD answers have no body).
    HeadError,
    /// That, or 200 (from the cache).
    HeadErrorOr200,
}

/// The store goes down with `fault` (round `round` of several on one registry): clear errors,
/// no readiness, liveness all along; back up: ready and working, by itself.
pub fn store_down(s: &Setup, image: &Image, round: usize, fault: Fault) {
    s.proxy.set(fault);
    s.wait_ready(503);
    assert_eq!(s.status(Method::GET, "/healthz"), 200, "alive all along");

    let repo = image.repo;
    let tag = format!("down{round}");
    let blob = pseudo_random(100 + round as u64, MIB + round);
    let digest = sha256(&blob);
    let what = format!("{fault:?}");
    // Pulls: never a 404, which would tell clients the image is gone. (A manifest this
    // process has just read may be answered from its cache, with the right bytes.)
    let manifest_path = format!("/v2/{repo}/manifests/{}", image.tag);
    let layer_path = format!("/v2/{repo}/blobs/{}", sha256(&image.layer));
    let never_pushed = format!("/v2/{repo}/manifests/{tag}");
    let get = |path: &str| s.reg.req(Method::GET, path);
    let get_manifest = |path: &str| get(path).header("accept", OCI_MANIFEST);
    let head = |path: &str| s.reg.req(Method::HEAD, path);
    let checks = [
        (
            "manifest GET",
            get_manifest(&manifest_path),
            Expect::ErrorOr(image.manifest.clone()),
        ),
        (
            "manifest HEAD",
            head(&manifest_path),
            Expect::HeadErrorOr200,
        ),
        (
            "GET of a manifest never pushed",
            get_manifest(&never_pushed),
            Expect::Error,
        ),
        (
            "HEAD of a manifest never pushed",
            head(&never_pushed),
            Expect::HeadError,
        ),
        (
            "HEAD of a blob never pushed",
            head(&format!("/v2/{repo}/blobs/{digest}")),
            Expect::HeadError,
        ),
        ("blob GET", get(&layer_path), Expect::Error),
        ("blob HEAD", head(&layer_path), Expect::HeadError),
        (
            "tag list",
            get(&format!("/v2/{repo}/tags/list")),
            Expect::Error,
        ),
        // Pushes.
        (
            "monolithic blob push",
            s.reg.blob_post(repo, &digest).body(blob.clone()),
            Expect::Error,
        ),
        (
            "upload session",
            s.reg
                .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")),
            Expect::Error,
        ),
        (
            "manifest push",
            s.reg
                .req(Method::PUT, &never_pushed)
                .header("content-type", OCI_MANIFEST)
                .body(image_manifest(OCI_CONFIG, &digest, blob.len(), &[])),
            Expect::Error,
        ),
    ];
    // At once: each may take a few seconds of the client library's retries.
    thread::scope(|scope| {
        for (name, request, expect) in checks {
            let what = format!("{what}: {name}");
            scope.spawn(move || check(s, request, expect, &what));
        }
    });
    if fault == Fault::Unavailable {
        assert!(s.proxy.unavailable_answers() > 0);
    }

    s.proxy.set(Fault::Pass);
    s.wait_ready(200);
    // Nothing of the failed push is visible.
    assert_eq!(
        s.status(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")),
        404
    );
    assert_eq!(s.status(Method::HEAD, &never_pushed), 404);
    // And everything works again.
    s.assert_pull(image);
    s.reg.push_blob(repo, &blob);
    s.assert_blob(repo, &blob);
}

fn check(s: &Setup, request: RequestBuilder, expect: Expect, what: &str) {
    let resp = s.send(request, what);
    let status = resp.status().as_u16();
    match expect {
        Expect::ErrorOr(bytes) if status == 200 => {
            assert!(resp.bytes().unwrap() == bytes, "{what}: the right bytes");
        }
        Expect::Error | Expect::ErrorOr(_) => s.expect_store_error(resp, what),
        Expect::HeadErrorOr200 if status == 200 => {}
        Expect::HeadError | Expect::HeadErrorOr200 => s.expect_5xx(status, what),
    }
}

/// A store that hangs: `/readyz` still answers, 503; a pull it holds finishes once it is back.
pub fn store_stalls(s: &Setup, image: &Image) {
    s.proxy.set(Fault::Stall);
    s.wait_ready(503);
    // Readiness checks that gave up are still held: count only what the pull adds.
    let held_before = s.proxy.stalled();
    let pull = {
        let path = format!("/v2/{}/blobs/{}", image.repo, sha256(&image.layer));
        let request = s.reg.req(Method::GET, &path);
        thread::spawn(move || {
            let resp = request.send().unwrap();
            (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
        })
    };
    eventually(
        "the pull to be held by the stalled store",
        Duration::from_secs(60),
        || s.proxy.stalled() > held_before && !pull.is_finished(),
    );
    s.proxy.set(Fault::Pass);
    let (status, body) = pull.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        body == image.layer,
        "the held pull completed with the right bytes"
    );
    s.wait_ready(200);
}
