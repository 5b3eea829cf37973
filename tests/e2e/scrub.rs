//! `oci-storage verify` and `scrub.schedule`: stored content read back and hashed, links
//! checked for their content; damage named, the exit status and `/metrics` telling.

use std::time::Duration;

use oci_storage_tests::{Server, config_with_storage, sha256};

use crate::protocol::{EMPTY_DIGEST, Reg, pseudo_random};

const FS: &str = "storage:\n  type: fs\n  fs:\n    path: data\n";

#[test]
fn verify_names_corrupt_and_missing_content() {
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + "scrub: {schedule: \"*/2 * * * * *\"}\n"),
        &[],
    ));
    let layer = pseudo_random(31, 300_000);
    reg.push_image("scrub/app", "v1", &layer);
    let other = pseudo_random(32, 1000);
    reg.push_image("scrub/other", "v1", &other);
    let out = reg.server.cli_ok(&["verify"]);
    assert!(out.contains("0 corrupt, 0 links without content"), "{out}");

    // One byte of the layer flipped on disk (same size), the other layer's content gone.
    let blob = |digest: &str| {
        reg.server
            .data_dir()
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..])
    };
    let (damaged, gone) = (sha256(&layer), sha256(&other));
    let mut bytes = std::fs::read(blob(&damaged)).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(blob(&damaged), bytes).unwrap();
    std::fs::remove_file(blob(&gone)).unwrap();
    // And a link a tagged manifest needs: scrub/app's link to the shared config.
    let config_link = format!(
        "repositories/scrub/app/_blobs/sha256/{}",
        &EMPTY_DIGEST["sha256:".len()..]
    );
    std::fs::remove_file(reg.server.data_dir().join(&config_link)).unwrap();

    let out = reg.server.cli(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        findings["corrupt"],
        serde_json::json!([damaged]),
        "{findings}"
    );
    assert_eq!(
        findings["missing"],
        serde_json::json!([format!("scrub/other@{gone}"), config_link]),
        "{findings}"
    );
    // The shared config, the damaged layer, two manifests.
    assert_eq!(findings["objects"], 4, "{findings}");

    // The scheduled scrub says so in /metrics and the log.
    oci_storage_tests::eventually("a scheduled scrub", Duration::from_secs(20), || {
        let metrics = reg.get("/metrics").text().unwrap();
        metrics.contains("\noci_storage_scrub_corrupt_objects 1\n")
            && metrics.contains("\noci_storage_scrub_missing_objects 2\n")
    });
    assert!(reg.server.logs().contains("scrub found damage"));
}
