//! What an incremental run really uploads, measured in the bucket.

use super::*;

/// A small registry backed up, then 8 MiB of new random layers: the second run adds those
/// 8 MiB and little else to the bucket, and its record's `newBytes` is what it added; a third
/// run with nothing new adds only its record.
#[test]
fn incremental_upload_is_what_changed() {
    oci_storage_tests::require_tool("skopeo");
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let source = Server::start_with(BIN, &fs_config(&aws_backup_yaml(&bucket, "b")), &[]);
    let src = source.scratch("layout");
    layout::single_image(&src, "v1", &[4096, 20_000]);
    run_ok(skopeo(&source).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/small/app:v1", source.host),
    ]));

    source.cli_ok(&["backup"]);
    let first = bucket_objects(&bucket, "b/");
    let records = snapshots(&source);
    assert_eq!(records.len(), 1);
    let record_key = |r: &Value| format!("b/snapshots/{}.json", r["id"].as_str().unwrap());
    // Everything the first run wrote but the target's marker and the record is new content
    // or documents.
    let marker = first["b/oci-storage-backup.json"];
    let record_size = first[&record_key(&records[0])];
    assert_eq!(
        u64_of(&records[0]["totals"]["newBytes"]),
        first.values().sum::<u64>() - marker - record_size,
        "{first:#?}\n{}",
        records[0]
    );

    let eight = 8 * MIB as u64;
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| pseudo_random(0x1ec2_0000 + i, 2 * MIB))
        .collect();
    Pusher::new(&source).image("big/data", "eight MiB", &layers, &["v1"]);

    source.cli_ok(&["backup"]);
    let second = bucket_objects(&bucket, "b/");
    let new = added(&first, &second);
    let new_bytes: u64 = new.values().sum();
    let records = snapshots(&source);
    assert_eq!(records.len(), 2);
    let record = &records[1];
    eprintln!(
        "8 MiB pushed: the second backup added {new_bytes} bytes in {} objects ({} over 8 MiB); record: {}",
        new.len(),
        new_bytes - eight.min(new_bytes),
        record["totals"]
    );
    assert!(
        new_bytes >= eight && new_bytes <= eight * 103 / 100 + 256 * KIB as u64,
        "8 MiB pushed, {new_bytes} bytes added to the bucket: {new:#?}"
    );
    // The four layers, the config and the manifest; the new repository's document (the
    // other one did not change, nor did the system document); the record.
    assert_eq!(count_under(&new, "b/blobs/"), 6, "{new:#?}");
    assert_eq!(count_under(&new, "b/meta/"), 1, "{new:#?}");
    assert_eq!(count_under(&new, "b/snapshots/"), 1, "{new:#?}");
    assert_eq!(new.len(), 8, "{new:#?}");
    assert!(new.contains_key(&record_key(record)), "{new:#?}");
    assert_eq!(
        u64_of(&record["totals"]["newBytes"]),
        new_bytes - new[&record_key(record)],
        "newBytes is what the run added to the bucket but its record: {new:#?}"
    );
    assert_eq!(u64_of(&record["totals"]["newObjects"]), 7, "{record}");
    assert_eq!(
        u64_of(&record["totals"]["bytes"]) - u64_of(&records[0]["totals"]["bytes"]),
        bytes_under(&new, "b/blobs/"),
        "the snapshot grew by the content uploaded"
    );

    source.cli_ok(&["backup"]);
    let third = bucket_objects(&bucket, "b/");
    let new = added(&second, &third);
    assert_eq!(new.len(), 1, "nothing new: only the record: {new:#?}");
    let records = snapshots(&source);
    assert_eq!(
        new.keys().next().unwrap(),
        &record_key(&records[2]),
        "{new:#?}"
    );
    assert_eq!(records[2]["totals"]["newBytes"], 0, "{}", records[2]);
    assert_eq!(records[2]["totals"]["newObjects"], 0, "{}", records[2]);
    assert_eq!(
        records[2]["totals"]["bytes"], records[1]["totals"]["bytes"],
        "{}",
        records[2]
    );
    assert_eq!(second.len() + 1, third.len());
}
