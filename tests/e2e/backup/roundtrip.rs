//! Back up, restore into a fresh registry on another backend, and compare.

use oci_storage_tests::object_stores::{
    FakeGcs, SeaweedFs, aws_backup_yaml, gcp_backup_yaml, gcs_storage_yaml, s3_storage_yaml,
    unique_prefix,
};
use oci_storage_tests::{Server, config_with_storage};

use super::{chart_index, check_restored, contents, populate, snapshots};

const FS_STORAGE: &str = "storage:\n  type: fs\n  fs:\n    path: data\n";

/// fs registry → `backup.aws` (SeaweedFS) → a fresh registry on s3; the incremental cost of
/// the next backups measured in the bucket.
#[test]
fn fs_registry_through_aws_into_s3_registry() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let backup = aws_backup_yaml(&bucket, "backups");
    let source = Server::start_with(
        crate::BIN,
        &(config_with_storage(FS_STORAGE) + &backup),
        &[],
    );
    let pushed = populate(&source);

    let out = source.cli_ok(&["backup"]);
    assert!(out.contains("snapshot "), "{out}");
    let first = snapshots(&source);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["repositories"].as_array().unwrap().len(), 3);
    assert!(first[0]["startedBy"].as_str().unwrap().starts_with("cli:"));
    source.cli_ok(&["backup", "verify", "--snapshot", "latest"]);

    // Nothing new: only the snapshot record is added to the bucket.
    let before = s3.list_keys(&bucket, "backups/");
    source.cli_ok(&["backup"]);
    let after = s3.list_keys(&bucket, "backups/");
    let added: Vec<&String> = after.iter().filter(|k| !before.contains(k)).collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0].starts_with("backups/snapshots/"), "{added:?}");
    let second = snapshots(&source);
    assert_eq!(second[1]["totals"]["newBytes"], 0, "{}", second[1]);
    assert_eq!(
        second[1]["totals"]["objects"],
        first[0]["totals"]["objects"]
    );

    let mut destination = Server::prepare(
        crate::BIN,
        &(config_with_storage(&s3_storage_yaml(s3.test_bucket(), &unique_prefix())) + &backup),
        &[],
    );
    let out = destination.cli_ok(&["restore", "--snapshot", "latest"]);
    assert!(out.contains("3 repositories created"), "{out}");
    destination.launch();
    assert_eq!(contents(&destination), contents(&source));
    assert_eq!(chart_index(&destination), chart_index(&source));
    check_restored(&destination, &pushed);

    // Restoring again changes nothing.
    let plan = destination.cli_ok(&["restore", "--dry-run"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["tagsAdded"], 0, "{plan}");
    assert_eq!(plan["contentObjects"], 0, "{plan}");
}

/// gcs registry → `backup.gcp` (fake-gcs-server, the seed's shape) → a fresh fs registry.
#[test]
fn gcs_registry_through_gcp_into_fs_registry() {
    let gcs = FakeGcs::shared();
    let bucket = gcs.new_bucket();
    let backup = gcp_backup_yaml(&bucket, "b");
    let source = Server::start_with(
        crate::BIN,
        &(config_with_storage(&gcs_storage_yaml(gcs.test_bucket(), &unique_prefix())) + &backup),
        &[],
    );
    let pushed = populate(&source);
    source.cli_ok(&["backup"]);
    let mut destination = Server::prepare(
        crate::BIN,
        &(config_with_storage(FS_STORAGE) + &backup),
        &[],
    );
    destination.cli_ok(&["restore"]);
    destination.launch();
    assert_eq!(contents(&destination), contents(&source));
    assert_eq!(chart_index(&destination), chart_index(&source));
    check_restored(&destination, &pushed);
}
