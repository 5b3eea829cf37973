//! Two replicas over one bucket, both scheduled: each slot's run happens once, on one of
//! them, and both show the same history.

use std::time::Duration;

use oci_storage_tests::object_stores::{SeaweedFs, s3_storage_yaml, unique_prefix};
use oci_storage_tests::{PASSWORD, Server, USER, config_with_storage};
use serde_json::Value;

fn status(server: &Server) -> Value {
    server
        .client()
        .get(server.at("/api/v1/gc"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn each_scheduled_slot_runs_once() {
    let s3 = SeaweedFs::shared();
    let storage = s3_storage_yaml(s3.test_bucket(), &unique_prefix());
    let config = config_with_storage(&storage)
        + "gc:\n  delay: 1s\n  untagged: true\n  leaseSeconds: 5\n  schedule: \"*/3 * * * * *\"\n";
    let a = Server::start_with(crate::BIN, &config, &[]);
    let b = Server::start_with(crate::BIN, &config, &[]);
    let runs = |server: &Server| -> Vec<Value> {
        status(server)["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["startedBy"] == "schedule" && r["state"] != "running")
            .cloned()
            .collect()
    };
    oci_storage_tests::eventually("four scheduled runs", Duration::from_secs(40), || {
        runs(&a).len() >= 4
    });
    let seen_by_a = runs(&a);
    let mut slots: Vec<&str> = seen_by_a
        .iter()
        .map(|r| r["slot"].as_str().expect("a scheduled run names its slot"))
        .collect();
    let count = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), count, "a slot ran twice: {seen_by_a:?}");
    assert!(
        seen_by_a.iter().all(|r| r["state"] == "succeeded"
            || r["error"]
                .as_str()
                .is_some_and(|e| e.contains("another job"))),
        "{seen_by_a:?}"
    );
    // Both replicas read the same records.
    let ids = |runs: &[Value]| -> Vec<String> {
        runs.iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let seen_by_b = runs(&b);
    let common = ids(&seen_by_a)
        .into_iter()
        .filter(|id| ids(&seen_by_b).contains(id))
        .count();
    assert!(common >= 3, "{seen_by_a:?}\n{seen_by_b:?}");
}
