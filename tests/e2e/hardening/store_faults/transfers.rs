//! The store goes away in the middle of a transfer: a chunked push, a streaming monolithic
//! push, a pull. Nothing partial may ever look complete.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use oci_storage_tests::fault_proxy::Fault;
use oci_storage_tests::object_stores::Backend;
use oci_storage_tests::{eventually, sha256};
use reqwest::Method;
use reqwest::blocking::Body;

use super::MIB;
use super::setup::{Image, Setup};
use crate::protocol::{pseudo_random, with_query};

/// Down in the middle of a chunked push: the failed chunk is not recorded, the session goes on
/// from the last chunk the registry acknowledged; down again as it completes: no blob, and the
/// completion can be repeated.
pub fn chunked_push(s: &Setup, repo: &str) {
    let blob = pseudo_random(7, 3 * MIB);
    let digest = sha256(&blob);
    let resp = s.send(
        s.reg
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")),
        "session",
    );
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let patch = |range: std::ops::Range<usize>| {
        s.send(
            s.reg
                .req(Method::PATCH, &location)
                .header("content-type", "application/octet-stream")
                .header(
                    "content-range",
                    format!("{}-{}", range.start, range.end - 1),
                )
                .body(blob[range].to_vec()),
            "PATCH",
        )
    };
    let upload_status = || s.send(s.reg.req(Method::GET, &location), "upload status");
    assert_eq!(patch(0..MIB).status(), 202);
    s.proxy.set(Fault::Refuse);
    s.expect_store_error(patch(MIB..2 * MIB), "PATCH with the store down");
    s.expect_store_error(upload_status(), "upload status with the store down");
    s.proxy.set(Fault::Pass);
    s.wait_ready(200);
    let resp = upload_status();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["range"],
        format!("0-{}", MIB - 1).as_str(),
        "only the acknowledged chunk counts"
    );
    assert_eq!(patch(MIB..2 * MIB).status(), 202);
    assert_eq!(patch(2 * MIB..3 * MIB).status(), 202);
    // The store goes away just as the upload is completed.
    s.proxy.set(Fault::Refuse);
    let finish = with_query(&location, &format!("digest={digest}"));
    let put_finish = |what| s.send(s.reg.req(Method::PUT, &finish), what);
    s.expect_store_error(put_finish("final PUT"), "final PUT with the store down");
    s.proxy.set(Fault::Pass);
    s.wait_ready(200);
    assert_eq!(
        s.status(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")),
        404,
        "a blob whose completion failed is not visible"
    );
    let resp = put_finish("final PUT again");
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
    s.assert_blob(repo, &blob);
}

/// Down while a monolithic push streams: an error, and no blob at all afterwards (on s3 a
/// 12 MiB blob is a multipart upload of 5 MiB parts, the first sent before the cut; on gcs
/// the body, under one resumable chunk, is sent to the store as one request). Answers the
/// blob, pushed again once the store is back.
pub fn streaming_push(s: &Setup, repo: &str) -> Vec<u8> {
    let len = if s.backend == Backend::S3 { 12 } else { 6 } * MIB;
    let big = Arc::new(pseudo_random(8, len));
    let digest = sha256(&big);
    let held = Held::new(big.clone(), len * 7 / 12);
    let (sent, go) = (held.sent.clone(), held.go.clone());
    let to_store_before = s.proxy.bytes_to_store();
    let push = {
        let request = s
            .reg
            .blob_post(repo, &digest)
            .header("content-type", "application/octet-stream")
            .body(Body::sized(held, len as u64));
        thread::spawn(move || {
            request.send().map(|r| {
                let status = r.status().as_u16();
                (status, r.text().unwrap_or_default())
            })
        })
    };
    let within = Duration::from_secs(60);
    eventually("part of the push to be sent", within, || {
        sent.load(Ordering::SeqCst) == (len * 7 / 12) as u64
    });
    if s.backend == Backend::S3 {
        eventually("the first part to reach the store", within, || {
            s.proxy.bytes_to_store() - to_store_before > 5 * MIB as u64
        });
    }
    s.proxy.set(Fault::Refuse);
    go.store(true, Ordering::SeqCst);
    // The error answer, not a reset connection: the registry reads the rest of the body
    // it will not store before answering.
    let (status, body) = push.join().unwrap().expect("an answer to the cut push");
    assert!(
        (500..600).contains(&status) && body.contains("\"UNKNOWN\""),
        "push cut by the outage: {status} {body}"
    );
    s.proxy.set(Fault::Pass);
    s.wait_ready(200);
    let path = format!("/v2/{repo}/blobs/{digest}");
    assert_eq!(s.status(Method::HEAD, &path), 404);
    assert_eq!(s.status(Method::GET, &path), 404);
    s.reg.push_blob(repo, &big);
    s.assert_blob(repo, &big);
    Arc::unwrap_or_clone(big)
}

/// Down in the middle of a pull of `blob` (stored): the answer was 200 with a Content-Length,
/// so the client must see the body end in an error, never a short body that looks complete.
pub fn cut_pull(s: &Setup, image: &Image, blob: &[u8]) {
    let repo = image.repo;
    s.proxy.cut_after(MIB as u64);
    let mut resp = s.send(
        s.reg
            .req(Method::GET, &format!("/v2/{repo}/blobs/{}", sha256(blob))),
        "pull",
    );
    let len = blob.len();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], len.to_string().as_str());
    let mut got = Vec::new();
    let read = resp.read_to_end(&mut got);
    assert!(
        read.is_err(),
        "a pull cut after {} of {len} bytes ended without an error",
        got.len()
    );
    assert!(got.len() < len, "{} bytes", got.len());
    assert!(
        got[..] == blob[..got.len()],
        "what arrived is the blob's start"
    );
    assert_eq!(s.proxy.fault(), Fault::Refuse, "the store was cut");
    s.wait_ready(503);
    s.proxy.set(Fault::Pass);
    s.wait_ready(200);
    s.assert_blob(repo, blob);
    s.assert_pull(image);
}

/// A request body that streams `data` up to `hold_at` bytes, then waits for `go`: so the
/// store can be taken away while the registry is in the middle of receiving it.
struct Held {
    data: Arc<Vec<u8>>,
    pos: usize,
    hold_at: usize,
    /// Bytes handed out so far.
    sent: Arc<AtomicU64>,
    go: Arc<AtomicBool>,
}

impl Held {
    fn new(data: Arc<Vec<u8>>, hold_at: usize) -> Self {
        Self {
            data,
            pos: 0,
            hold_at,
            sent: Arc::default(),
            go: Arc::default(),
        }
    }
}

impl Read for Held {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.hold_at && !self.go.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
        }
        let limit = if self.pos < self.hold_at {
            self.hold_at
        } else {
            self.data.len()
        };
        let n = buf.len().min(64 * 1024).min(limit - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        self.sent.store(self.pos as u64, Ordering::SeqCst);
        Ok(n)
    }
}
