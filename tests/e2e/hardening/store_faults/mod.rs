//! Object storage faults: the real store (SeaweedFS for s3, fake-gcs-server for gcs) behind a
//! [fault-injecting TCP proxy](oci_storage_tests::fault_proxy) that forwards real bytes and
//! can, at any moment, refuse connections (the store is down), accept and close them, answer
//! `503` to every request, stall (hold every byte), or cut every connection once a number of
//! response bytes went through.
//!
//! Checked, on both backends, without restarting the registry: while the store is unreachable
//! `/readyz` answers 503 (promptly, even when the store stalls) and `/healthz` 200; pushes and
//! pulls get a 5xx with OCI error JSON (never a 404 that would say "not there", never a hang);
//! a blob whose upload failed is 404 afterwards, never truncated; a pull cut in the middle
//! ends in an error, never in a short body that looks complete; a chunked upload interrupted
//! by the outage continues afterwards; and once the store is back, `/readyz` turns 200 by
//! itself and pushes and pulls work again.

mod outages;
mod setup;
mod transfers;

use std::time::{Duration, Instant};

use oci_storage_tests::fault_proxy::Fault;
use oci_storage_tests::object_stores::Backend;

use crate::protocol::pseudo_random;
use setup::{Image, Setup};

const MIB: usize = 1024 * 1024;

/// The store goes away (each way it can), then comes back: see the module documentation. One
/// registry process throughout, so every recovery is its own.
fn outage_and_recovery(backend: Backend) {
    let started = Instant::now();
    let s = Setup::start(backend);
    let repo = "faults/app";
    let layer = pseudo_random(1, 2 * MIB + 17);
    let (manifest, _) = s.reg.push_image(repo, "v1", &layer);
    let image = Image {
        repo,
        tag: "v1",
        manifest,
        layer,
    };
    s.assert_pull(&image);
    let mut timings = Vec::new();
    for (round, fault) in [Fault::Refuse, Fault::Close, Fault::Unavailable]
        .into_iter()
        .enumerate()
    {
        timed(&mut timings, format!("{fault:?}"), || {
            outages::store_down(&s, &image, round, fault);
        });
    }
    timed(&mut timings, "Stall", || outages::store_stalls(&s, &image));
    timed(&mut timings, "chunked push", || {
        transfers::chunked_push(&s, repo);
    });
    let big = timed(&mut timings, "monolithic push", || {
        transfers::streaming_push(&s, repo)
    });
    timed(&mut timings, "pull", || {
        transfers::cut_pull(&s, &image, &big)
    });
    eprintln!(
        "{:?}: {timings:?}, total {:.1?}",
        s.backend,
        started.elapsed()
    );
}

/// Runs one phase, noting how long it took (printed: a slow recovery shows there).
fn timed<T>(
    timings: &mut Vec<(String, Duration)>,
    name: impl Into<String>,
    phase: impl FnOnce() -> T,
) -> T {
    let started = Instant::now();
    let out = phase();
    timings.push((name.into(), started.elapsed()));
    out
}

#[test]
fn s3_store_outage_and_recovery() {
    outage_and_recovery(Backend::S3);
}

#[test]
fn gcs_store_outage_and_recovery() {
    outage_and_recovery(Backend::Gcs);
}
