//! The backup target going away under a run.

use super::*;

/// The backup target goes away: from the start, and after the first MiBs of a run (of 64 MiB
/// in 16 blobs). The CLI
/// exits 1 with a message that names the target, leaves no snapshot record, and does not
/// hang; with the store back, the next run completes.
#[test]
fn store_outage_fails_the_backup_plainly() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let proxy = FaultProxy::in_front_of(&s3.endpoint);
    let source = Server::start_with(
        BIN,
        &fs_config(&(aws_through(&proxy, &bucket) + SHORT_LEASE)),
        &[],
    );
    let pusher = Pusher::new(&source);
    for i in 0..16u64 {
        let layer = pseudo_random(0x07a0_0000 + i, 4 * MIB);
        pusher.image(
            "outage/app",
            &format!("image {i}"),
            &[layer],
            &[&format!("v{i}")],
        );
    }
    let target = format!("s3:{bucket}/b");
    let plain = |stderr: &str, what: &str| {
        assert!(
            stderr.contains(&target),
            "{what}: the error names the target {target}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!stderr.contains(S3_SECRET_KEY), "{what}: {stderr}");
    };

    // Down from the start.
    proxy.set(Fault::Refuse);
    let clock = Instant::now();
    let out = source.cli(&["backup"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "store down from the start ({:?}): {stderr}",
        clock.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    plain(&stderr, "store down from the start");
    assert!(clock.elapsed() < Duration::from_secs(30));

    // Down after the first MiBs.
    proxy.set(Fault::Pass);
    let mut run = Background::spawn(&source, &["backup"]);
    eventually("the first MiBs sent", Duration::from_secs(30), || {
        proxy.bytes_to_store() >= 6 * MIB as u64 || !run.running()
    });
    assert!(run.running(), "{}", run.output());
    proxy.set(Fault::Refuse);
    let clock = Instant::now();
    let (status, _, stderr) = run.wait(Duration::from_secs(60));
    eprintln!(
        "store down midway: ended in {:?} after the outage: {stderr}",
        clock.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    plain(&stderr, "store down midway");
    assert!(
        s3.list_keys(&bucket, "b/snapshots/").is_empty(),
        "no record for a failed run"
    );

    // Back.
    proxy.set(Fault::Pass);
    assert!(snapshots(&source).is_empty());
    let out = source.cli_ok(&["backup"]);
    assert!(out.contains("snapshot "), "{out}");
    let records = snapshots(&source);
    assert_eq!(records.len(), 1);
    assert!(u64_of(&records[0]["totals"]["bytes"]) >= 64 * MIB as u64);
    source.cli_ok(&["backup", "verify", "--snapshot", "latest"]);
}
