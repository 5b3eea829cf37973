//! A target holds one registry's backups: another registry pointed at it is refused (the two
//! would prune each other's snapshots), and a fresh registry restored from it takes it over.

use super::*;

/// Registry `a` backs up to a prefix; `b`, a different registry with the same settings, is
/// refused there and writes nothing; `c`, a fresh registry restored from `a`'s snapshot,
/// adopts `a`'s id and goes on backing up to the same prefix.
#[test]
fn a_target_belongs_to_one_registry_and_a_restored_one_takes_it_over() {
    oci_storage_tests::require_tool("skopeo");
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let config = fs_config(&aws_backup_yaml(&bucket, "b"));
    let a = Server::start_with(BIN, &config, &[]);
    let src = a.scratch("layout");
    layout::single_image(&src, "v1", &[4096]);
    run_ok(skopeo(&a).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/owned/app:v1", a.host),
    ]));
    a.cli_ok(&["backup"]);
    let a_id = registry_id(&a);
    let after_a = bucket_objects(&bucket, "b/");

    let b = Server::start_with(BIN, &config, &[]);
    b.cli_ok(&["backup", "list"]); // reading is fine
    let out = b.cli(&["backup"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another registry") && stderr.contains(&a_id),
        "{stderr}"
    );
    assert_ne!(registry_id(&b), a_id);
    assert_eq!(
        bucket_objects(&bucket, "b/"),
        after_a,
        "a refused registry writes nothing"
    );

    let mut c = Server::prepare(BIN, &config, &[]);
    c.cli_ok(&["restore"]);
    assert_eq!(registry_id(&c), a_id, "a fresh registry adopts the id");
    c.launch();
    c.cli_ok(&["backup"]);
    assert_eq!(snapshots(&c).len(), 2);
    assert_eq!(contents(&c), contents(&a));
}

/// The id an fs registry keeps in `system/registry-id.json`.
fn registry_id(server: &Server) -> String {
    let path = server.data_dir().join("system/registry-id.json");
    let doc: Value = serde_json::from_slice(&read(&path)).unwrap();
    doc["id"].as_str().expect("an id").to_owned()
}
