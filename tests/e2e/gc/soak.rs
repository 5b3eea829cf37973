//! Clients push, move and delete tags — some slowly, their blobs ageing past `gc.delay`
//! before the manifest — while runs follow one another; afterwards every tag a client was
//! last told exists resolves to what it pushed, whole, and the runs did collect.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oci_storage_tests::{Server, XorShift, config_with_storage};

use super::{FS, GC, check_pullable, count, gc};
use crate::protocol::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Reg, image_manifest, pseudo_random};

const CLIENTS: u64 = 4;
const SOAK: Duration = Duration::from_secs(20);

#[test]
fn pushes_and_deletes_while_runs_go_on() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + GC),
        &[],
    ));
    // Layers every client also pushes: stored long before, so often found, not written.
    let shared: Vec<Vec<u8>> = (0..4).map(|i| pseudo_random(1000 + i, 64 * 1024)).collect();
    for layer in &shared {
        reg.push_blob("soak/seed", layer);
    }
    let config = reg.push_blob("soak/seed", b"{}");
    std::thread::sleep(Duration::from_millis(1100));

    let stop = AtomicBool::new(false);
    let (ledgers, runs) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (reg, stop, shared, config) = (&reg, &stop, &shared, &config);
                scope.spawn(move || push_and_delete(reg, client, stop, shared, config))
            })
            .collect();
        let collector = scope.spawn(|| {
            let mut runs = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                runs.push(gc(&reg.server, false));
                std::thread::sleep(Duration::from_millis(300));
            }
            runs
        });
        std::thread::sleep(SOAK);
        stop.store(true, Ordering::Relaxed);
        let ledgers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        (ledgers, collector.join().unwrap())
    });

    assert!(runs.len() >= 3, "{} runs", runs.len());
    let collected: u64 = runs.iter().map(|r| count(r, "content objects (")).sum();
    assert!(
        collected > 0,
        "the runs collected the deleted images' content"
    );
    let mut live = 0;
    for (client, ledger) in ledgers.iter().enumerate() {
        let repo = format!("soak/c{client}");
        for (tag, digest) in ledger {
            let digest = digest.as_ref();
            let resp = reg.head(&format!("/v2/{repo}/manifests/{tag}"));
            match digest {
                Some(digest) => {
                    live += 1;
                    assert_eq!(resp.status(), 200, "{repo}:{tag}");
                    assert_eq!(
                        resp.headers()["docker-content-digest"].to_str().unwrap(),
                        digest
                    );
                    check_pullable(&reg, &repo, tag);
                }
                None => assert_eq!(resp.status(), 404, "{repo}:{tag} was deleted"),
            }
        }
    }
    assert!(live > 10, "{live} live tags");
    let restored = reg
        .server
        .logs()
        .matches("put back from the garbage collector's trash")
        .count();
    eprintln!(
        "soak: {} runs, {collected} content objects collected, {live} live tags, {restored} restores",
        runs.len()
    );
    assert!(
        restored > 0,
        "slow pushes had their blobs collected and put back"
    );
    // Two more runs (the second empties the soak's trash) take nothing a tag needs.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100));
        gc(&reg.server, false);
    }
    for (client, ledger) in ledgers.iter().enumerate() {
        for (tag, _) in ledger.iter().filter(|(_, d)| d.is_some()) {
            check_pullable(&reg, &format!("soak/c{client}"), tag);
        }
    }
}

/// One client's pushes and deletes until `stop`; answers its ledger: tag → the digest it was
/// last acknowledged, or `None` once deleted.
fn push_and_delete(
    reg: &Reg,
    client: u64,
    stop: &AtomicBool,
    shared: &[Vec<u8>],
    config: &str,
) -> BTreeMap<String, Option<String>> {
    let repo = format!("soak/c{client}");
    let mut rng = XorShift::new(client + 1);
    let mut ledger: BTreeMap<String, Option<String>> = BTreeMap::new();
    let started = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let roll = rng.next_u64() % 10;
        let live: Vec<String> = ledger
            .iter()
            .filter(|(_, d)| d.is_some())
            .map(|(t, _)| t.clone())
            .collect();
        if roll < 3 && !live.is_empty() {
            let tag = &live[(rng.next_u64() % live.len() as u64) as usize];
            assert_eq!(
                reg.delete(&format!("/v2/{repo}/manifests/{tag}")).status(),
                202
            );
            ledger.insert(tag.clone(), None);
            continue;
        }
        // An image of a layer of its own and a shared one; one push in four is slow.
        let own = pseudo_random(
            client * 1_000_000 + n,
            20_000 + (rng.next_u64() % 50_000) as usize,
        );
        let common = &shared[(rng.next_u64() % shared.len() as u64) as usize];
        let own_digest = reg.push_blob(&repo, &own);
        let common_digest = reg.push_blob(&repo, common);
        assert_eq!(reg.push_blob(&repo, b"{}"), config);
        if roll == 9 {
            std::thread::sleep(Duration::from_millis(1300));
        }
        let manifest = image_manifest(
            OCI_CONFIG,
            config,
            2,
            &[
                (OCI_LAYER, &own_digest, own.len()),
                (OCI_LAYER, &common_digest, common.len()),
            ],
        );
        // Tags are reused now and then, so some move.
        let tag = format!("t{}", rng.next_u64() % 12);
        let digest = reg.push_manifest(&repo, &tag, OCI_MANIFEST, &manifest);
        ledger.insert(tag, Some(digest));
    }
    assert!(
        n > 5,
        "client {client}: {n} actions in {:?}",
        started.elapsed()
    );
    ledger
}
