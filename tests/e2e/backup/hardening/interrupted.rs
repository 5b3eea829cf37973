//! `backup` and `restore` processes killed with SIGKILL midway, then run again.

use super::*;

/// 128 MiB in 32 blobs; the store is held (stalled) after 40 MiB and the `backup` process
/// killed with SIGKILL: no snapshot record, and nothing partial in `blobs/`. Once the dead
/// process's lease expired, the next run completes, uploading only what the first did not,
/// and the snapshot verifies.
#[test]
fn kill9_mid_backup_leaves_no_snapshot_and_the_next_completes() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let proxy = FaultProxy::in_front_of(&s3.endpoint);
    let source = Server::start_with(
        BIN,
        &fs_config(&(aws_through(&proxy, &bucket) + SHORT_LEASE)),
        &[],
    );
    let pusher = Pusher::new(&source);
    for i in 0..8u64 {
        let layers: Vec<Vec<u8>> = (0..4)
            .map(|j| pseudo_random(0xc0de_0000 + i * 4 + j, 4 * MIB))
            .collect();
        pusher.image(
            "bulk/app",
            &format!("image {i}"),
            &layers,
            &[&format!("v{i}")],
        );
    }

    let mut run = Background::spawn(&source, &["backup"]);
    eventually("the backup to send 40 MiB", Duration::from_secs(60), || {
        proxy.bytes_to_store() >= 40 * MIB as u64 || !run.running()
    });
    proxy.set(Fault::Stall);
    eventually("some blobs in the bucket", Duration::from_secs(20), || {
        !s3.list_keys(&bucket, "b/blobs/").is_empty()
    });
    let sent = proxy.bytes_to_store();
    run.kill9();
    let killed_at = Instant::now();
    assert!(
        s3.list_keys(&bucket, "b/snapshots/").is_empty(),
        "a killed run leaves no snapshot record"
    );
    // The dead process's lease keeps other jobs out until it expires.
    assert_busy(&source, &["backup"]);
    assert!(killed_at.elapsed() < Duration::from_secs(3));
    // The held traffic goes on (to a dead client): whatever it completes is whole.
    proxy.set(Fault::Pass);
    thread::sleep(Duration::from_millis(500));
    assert!(snapshots(&source).is_empty());
    let before = bucket_objects(&bucket, "b/");
    for key in before.keys().filter(|k| k.starts_with("b/blobs/")) {
        let hex = key.rsplit('/').next().unwrap();
        assert_eq!(
            sha256(&s3.get_object(&bucket, key)),
            format!("sha256:{hex}"),
            "{key} is partial or damaged"
        );
    }
    let uploaded = bytes_under(&before, "b/blobs/");
    eprintln!(
        "killed after {sent} bytes sent to the store; {uploaded} bytes of content in the bucket ({} objects), {} documents",
        count_under(&before, "b/blobs/"),
        count_under(&before, "b/meta/")
    );
    assert!(uploaded > 0 && uploaded < 128 * MIB as u64, "{before:#?}");

    wait_for_lease_expiry(&source);
    let out = source.cli_ok(&["backup"]);
    assert!(out.contains("snapshot "), "{out}");
    let after = bucket_objects(&bucket, "b/");
    let new = added(&before, &after);
    let records = snapshots(&source);
    assert_eq!(records.len(), 1, "{records:#?}");
    let totals = &records[0]["totals"];
    let total = u64_of(&totals["bytes"]);
    assert!(total >= 128 * MIB as u64, "{totals}");
    let new_bytes = u64_of(&totals["newBytes"]);
    eprintln!(
        "the next run: {new_bytes} new bytes of {total} (the killed run had uploaded {uploaded})"
    );
    assert!(new_bytes < total, "it reused what was uploaded: {totals}");
    // Exactly the content that was missing, the system document (the killed run had written
    // the repository document before copying), and the record.
    assert_eq!(
        bytes_under(&new, "b/blobs/"),
        total - uploaded,
        "the next run uploads exactly the missing content"
    );
    assert_eq!(count_under(&new, "b/meta/"), 1, "{new:#?}");
    let record_key = format!("b/snapshots/{}.json", records[0]["id"].as_str().unwrap());
    assert_eq!(
        new_bytes,
        new.values().sum::<u64>() - new[&record_key],
        "{new:#?}"
    );
    let out = source.cli_ok(&["backup", "verify", "--snapshot", "latest"]);
    assert!(out.contains("every digest right"), "{out}");
}

/// A `restore` killed with SIGKILL while it copies content, and again while it writes
/// repositories: every tag the destination serves then resolves completely (restore writes
/// in push order); a run while the dead one's lease holds is refused; a last run completes,
/// and the destination serves what the source does, to the same clients.
#[test]
fn kill9_mid_restore_then_again() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let backup = aws_backup_yaml(&bucket, "b") + SHORT_LEASE;
    let source = Server::start_with(BIN, &fs_config(&backup), &[]);
    let pushed = populate(&source);
    let pusher = Pusher::new(&source);
    // 64 MiB more in 16 repositories, and 64 small ones: each phase of a restore takes a
    // moment.
    for i in 0..16u64 {
        let layer = pseudo_random(0x5e5e_0000 + i, 4 * MIB);
        pusher.image(
            &format!("extra/big{i:02}"),
            "big",
            &[layer],
            &["v1", "latest"],
        );
    }
    for i in 0..64u64 {
        let layer = pseudo_random(0x5e5f_0000 + i, KIB);
        pusher.image(
            &format!("extra/small{i:02}"),
            "small",
            &[layer],
            &["v1", "latest"],
        );
    }
    source.cli_ok(&["backup"]);
    let expected = contents(&source);
    let expected_tags: BTreeMap<(String, String), String> = expected
        .iter()
        .map(|(r, t, d)| ((r.clone(), t.clone()), d.clone()))
        .collect();

    let mut dest = Server::prepare(BIN, &fs_config(&backup), &[]);
    let data = dest.data_dir();

    // 1. Killed while content is copied.
    let mut run = Background::spawn(&dest, &["restore"]);
    eventually(
        "the restore to store content",
        Duration::from_secs(60),
        || files_under(&data.join("blobs")).len() >= 8 || !run.running(),
    );
    run.kill9();
    // The dead process's lease keeps other jobs out until it expires.
    assert_busy(&dest, &["restore"]);
    let whole = content_is_whole(&data);
    dest.launch();
    let served = served_tags_complete(&dest);
    dest.kill9();
    eprintln!(
        "killed in the content phase: {whole} content files, all whole; {} tags served",
        served.len()
    );
    for (tag, digest) in &served {
        assert_eq!(expected_tags.get(tag), Some(digest), "{tag:?}");
    }

    // 2. Killed while repositories are written.
    wait_for_lease_expiry(&dest);
    let mut run = Background::spawn(&dest, &["restore"]);
    eventually("the restore to write tags", Duration::from_secs(60), || {
        tag_files(&data) >= 12 || !run.running()
    });
    run.kill9();
    assert_busy(&dest, &["restore"]);
    let written = tag_files(&data);
    content_is_whole(&data);
    dest.launch();
    let served = served_tags_complete(&dest);
    dest.kill9();
    eprintln!(
        "killed in the repositories phase: {written} tag files written, {} tags served (all complete) of {}",
        served.len(),
        expected.len()
    );
    assert!(!served.is_empty(), "tags were written before the kill");
    for (tag, digest) in &served {
        assert_eq!(
            expected_tags.get(tag),
            Some(digest),
            "{tag:?} as in the snapshot"
        );
    }

    // 3. To the end.
    wait_for_lease_expiry(&dest);
    let out = dest.cli_ok(&["restore"]);
    assert!(out.contains("restored snapshot"), "{out}");
    dest.launch();
    assert_eq!(contents(&dest), expected);
    assert_eq!(served_tags_complete(&dest), expected_tags);
    assert_eq!(chart_index(&dest), chart_index(&source));
    check_restored(&dest, &pushed);
}

/// A restore interrupted right after it wrote a chart's tag, before that chart's record
/// (`chartmeta/`), leaves what this test leaves by deleting the record after a full
/// restore. Running the restore again must complete it: "every step can be repeated"
/// (design §2.1), and `index.yaml` must list every chart version again.
#[test]
fn restore_again_rebuilds_chart_metadata_of_tags_already_written() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let backup = aws_backup_yaml(&bucket, "b") + SHORT_LEASE;
    let source = Server::start_with(BIN, &fs_config(&backup), &[]);
    populate(&source);
    source.cli_ok(&["backup"]);

    let mut dest = Server::prepare(BIN, &fs_config(&backup), &[]);
    dest.cli_ok(&["restore"]);
    let chart_record = dest.data_dir().join("chartmeta/charts/webapp/1.1.0.json");
    assert!(chart_record.is_file(), "{chart_record:?}");
    std::fs::remove_file(&chart_record).unwrap();
    let out = dest.cli_ok(&["restore"]);
    eprintln!("{out}");
    dest.launch();
    assert_eq!(
        chart_index(&dest),
        chart_index(&source),
        "a repeated restore restores the chart record of a tag it finds already written"
    );
}
