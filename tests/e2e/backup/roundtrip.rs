//! Back up, restore into a fresh registry on another backend, and compare.

use oci_storage_tests::object_stores::{
    FakeGcs, SeaweedFs, aws_backup_yaml, gcp_backup_yaml, gcs_storage_yaml, s3_storage_yaml,
    unique_prefix,
};
use oci_storage_tests::{Server, config_with_storage};

use super::{chart_index, check_restored, contents, listing, populate, snapshots};

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
    assert_eq!(listing(&destination), listing(&source));
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
    assert_eq!(listing(&destination), listing(&source));
    check_restored(&destination, &pushed);
}

/// `backup.aws` with `anonymous: true` (unsigned requests, for a local server or a public
/// bucket): works where anonymous access is allowed, fails plainly where it is not, and does
/// not mix with keys.
#[test]
fn anonymous_aws_target() {
    let s3 = SeaweedFs::shared();
    let anonymous = |bucket: &str, prefix: &str| {
        format!(
            "backup:\n  enabled: true\n  aws: {{bucket: {bucket}, prefix: {prefix}, region: us-east-1, endpoint: \"{}\", forcePathStyle: true, anonymous: true}}\n",
            s3.endpoint
        )
    };
    let open = s3.anonymous_bucket();
    let prefix = unique_prefix();
    let server = Server::start_with(
        crate::BIN,
        &(config_with_storage(FS_STORAGE) + &anonymous(open, &prefix)),
        &[],
    );
    let reg = crate::protocol::Reg::with(server);
    reg.push_image("anon/app", "v1", b"a layer pushed for an anonymous target");
    reg.server.cli_ok(&["backup"]);
    reg.server.cli_ok(&["backup", "verify"]);
    assert!(
        s3.list_keys(open, &format!("{prefix}/snapshots/")).len() == 1,
        "the snapshot is in the anonymous bucket"
    );

    // A bucket that wants credentials refuses unsigned requests: the backup fails and says so.
    let locked = s3.new_bucket();
    let server = Server::start_with(
        crate::BIN,
        &(config_with_storage(FS_STORAGE) + &anonymous(&locked, "x")),
        &[],
    );
    let out = server.cli(&["backup"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("s3:{locked}")), "{stderr}");
    assert!(s3.list_keys(&locked, "").is_empty());

    // Keys and anonymous together: a startup error naming the key.
    let both = Server::prepare(
        crate::BIN,
        &(config_with_storage(FS_STORAGE)
            + &anonymous(open, "y").replace(
                "anonymous: true",
                "anonymous: true, accessKeyId: a, secretAccessKey: b",
            )),
        &[],
    );
    let out = both.cli(&["check-config"]);
    let out = if out.status.success() {
        both.cli(&["backup"])
    } else {
        out
    };
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("backup.aws") && stderr.contains("anonymous"),
        "{stderr}"
    );
}

/// s3 registry → `backup.target: {type: fs}` (a directory, as an NFS mount would be) → a fresh
/// registry on gcs.
#[test]
fn s3_registry_through_a_directory_into_gcs_registry() {
    let s3 = SeaweedFs::shared();
    let gcs = FakeGcs::shared();
    let directory = tempfile::tempdir().unwrap();
    let backup = format!(
        "backup:\n  enabled: true\n  target: {{type: fs, path: \"{}\"}}\n",
        directory.path().display()
    );
    let source = Server::start_with(
        crate::BIN,
        &(config_with_storage(&s3_storage_yaml(s3.test_bucket(), &unique_prefix())) + &backup),
        &[],
    );
    let pushed = populate(&source);
    source.cli_ok(&["backup"]);
    assert!(
        directory
            .path()
            .join("snapshots")
            .read_dir()
            .unwrap()
            .count()
            == 1
    );
    let mut destination = Server::prepare(
        crate::BIN,
        &(config_with_storage(&gcs_storage_yaml(gcs.test_bucket(), &unique_prefix())) + &backup),
        &[],
    );
    destination.cli_ok(&["restore"]);
    destination.launch();
    assert_eq!(contents(&destination), contents(&source));
    assert_eq!(chart_index(&destination), chart_index(&source));
    assert_eq!(listing(&destination), listing(&source));
    check_restored(&destination, &pushed);
}
