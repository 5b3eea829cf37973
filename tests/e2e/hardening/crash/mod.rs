//! Crashes under load: several clients push images (monolithic, POST-then-PUT and chunked blob
//! uploads, then manifests by tag) while the server is killed with SIGKILL at random moments
//! and restarted over the same storage, on fs and on s3 (SeaweedFS).
//!
//! Checked: whatever was acknowledged (201) is served afterwards, byte for byte, and tags
//! resolve to the last acknowledged manifest; right after every crash, what an interrupted
//! request may have left is either absent or whole (never a truncated blob or manifest); an
//! interrupted chunked upload resumes from the offset the server acknowledged or the one it
//! was writing; and at the end every blob object in the store hashes to its name. A transport
//! error is only accepted when the server was killed while the request was in flight.

mod after_crash;
mod final_checks;
mod ledger;
mod pusher;
mod transport;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oci_storage_tests::object_stores::{SeaweedFs, unique_prefix};
use oci_storage_tests::{Server, XorShift, config_with_storage};

use crate::BIN;
use final_checks::Store;
use ledger::{Outcome, Totals};
use pusher::Pusher;
use transport::{Connection, Target};

/// Concurrent pushing clients.
const CLIENTS: usize = 4;
/// SIGKILLs per run.
const KILLS: usize = 15;
/// Layers every client pushes now and then, so concurrent pushes of one digest into several
/// repositories (where a stored blob is only linked, not written again) race with crashes.
const SHARED_LAYERS: u64 = 3;

/// The run's seed: `CRASH_SEED`, or the clock. Printed, so a failing run says which sequence
/// of sizes, modes and kill times it used.
fn seed() -> u64 {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed {seed} (CRASH_SEED={seed} repeats its sizes and modes)");
    seed
}

/// Starts `CLIENTS` pushing clients, each with a repository and random sequence of its own.
fn spawn_pushers(target: &Arc<Target>, seed: u64) -> Vec<JoinHandle<Result<Outcome, String>>> {
    (0..CLIENTS)
        .map(|index| {
            let rng = XorShift::new(seed ^ ((index as u64 + 1) * 0x5851_F42D));
            let pusher = Pusher::new(index, Connection::new(target.clone()), rng);
            let target = target.clone();
            thread::spawn(move || {
                let result = pusher.run();
                if result.is_err() {
                    target.failed.store(true, Ordering::SeqCst);
                }
                result
            })
        })
        .collect()
}

/// Kills the server with SIGKILL and restarts it over the same storage, `KILLS` times at
/// random intervals, unless a client fails first; answers how many kills there were.
fn kill_repeatedly(server: &mut Server, target: &Target, rng: &mut XorShift) -> usize {
    let mut kills = 0;
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(rng.range(150, 1200)));
        if target.failed.load(Ordering::SeqCst) {
            break;
        }
        target.going_down();
        server.kill9();
        kills += 1;
        server.restart();
        target.back_up(&server.url);
    }
    kills
}

/// Pushes with `CLIENTS` clients while killing and restarting the server `KILLS` times, then
/// checks everything acknowledged from a freshly restarted process, and the store itself.
fn crash_while_pushing(store: &Store) {
    let started = Instant::now();
    let seed = seed();
    let mut rng = XorShift::new(seed);
    let config = config_with_storage(&store.storage_yaml());
    let mut server = Server::start_with(BIN, &config, &[]);
    let target = Arc::new(Target::default());
    target.back_up(&server.url);

    let pushers = spawn_pushers(&target, seed);
    let kills = kill_repeatedly(&mut server, &target, &mut rng);
    target.stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<Outcome> = pushers
        .into_iter()
        .map(|p| p.join().expect("a pushing client panicked"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.logs()));
    assert_eq!(kills, KILLS);
    let pushing = started.elapsed();

    server.restart();
    final_checks::everything_acknowledged_is_served(&server, &outcomes);
    let stored = final_checks::every_stored_blob_is_whole(store, &server, &outcomes);

    let Totals {
        images,
        interrupted,
        resumed,
        restarted,
    } = Totals::of(&outcomes);
    let total: usize = interrupted.values().sum();
    eprintln!(
        "{KILLS} kills, {images} images by {CLIENTS} clients in {pushing:.1?}; interrupted requests {interrupted:?}; \
         chunked uploads resumed {resumed}, started over after their final PUT was repeated (by answer) {restarted:?}; {stored} blob objects stored and verified; total {:.1?}",
        started.elapsed()
    );
    // The kills did hit requests in flight (each kill lands while several clients stream).
    assert!(
        total >= KILLS / 2,
        "only {total} requests were interrupted by {KILLS} kills: {interrupted:?}"
    );
    assert!(images >= CLIENTS, "every client pushed images: {images}");
}

#[test]
fn crash_while_pushing_on_fs() {
    crash_while_pushing(&Store::Fs);
}

#[test]
fn crash_while_pushing_on_s3() {
    crash_while_pushing(&Store::S3 {
        bucket: SeaweedFs::shared().test_bucket().to_owned(),
        prefix: unique_prefix(),
    });
}
