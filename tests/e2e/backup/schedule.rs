//! Scheduled backups on two replicas sharing one store and one bucket: each slot runs once,
//! on one of them, and `backup.keep` prunes what it does not keep.

use std::time::Duration;

use oci_storage_tests::object_stores::{
    SeaweedFs, aws_backup_yaml, s3_storage_yaml, unique_prefix,
};
use oci_storage_tests::{Server, config_with_storage};

use super::get_json;
use serde_json::Value;

#[test]
fn two_replicas_run_each_slot_once() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.new_bucket();
    let storage = s3_storage_yaml(s3.test_bucket(), &unique_prefix());
    // Every 4 s (cron with seconds), short leases, keep the last 2.
    let config = config_with_storage(&storage)
        + &aws_backup_yaml(&bucket, "sched")
        + "  schedule: \"*/4 * * * * *\"\n  leaseSeconds: 5\n  keep: {last: 2}\n";
    let a = Server::start_with(crate::BIN, &config, &[]);
    let b = Server::start_with(crate::BIN, &config, &[]);
    let logs = a.logs();
    assert!(
        logs.contains("backup: enabled") && logs.contains("next_run"),
        "{logs}"
    );
    let info = get_json(&b, "/api/v1/backups");
    assert_eq!(info["schedule"], "*/4 * * * * *");
    assert!(info["nextRun"].is_string(), "{info}");

    // At least four slots pass.
    std::thread::sleep(Duration::from_secs(17));
    oci_storage_tests::eventually("the running job ends", Duration::from_secs(20), || {
        get_json(&a, "/api/v1/backups")["running"].is_null()
    });
    let jobs = get_json(&a, "/api/v1/backups/jobs?limit=100");
    let scheduled: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["startedBy"] == "schedule")
        .collect();
    assert!(scheduled.len() >= 3, "{jobs}");
    // One job per slot: each names the slot it ran.
    let mut slots: Vec<&str> = scheduled
        .iter()
        .map(|j| j["slot"].as_str().expect("a scheduled job names its slot"))
        .collect();
    let count = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), count, "a slot ran twice: {jobs}");
    assert!(
        scheduled
            .iter()
            .all(|j| j["state"] == "succeeded" || j["state"] == "skipped"),
        "{jobs}"
    );
    // Each job names the replica that ran it (host/pid/random): one of the two.
    let mut holders: Vec<&str> = scheduled
        .iter()
        .map(|j| j["holder"].as_str().unwrap())
        .collect();
    holders.sort();
    holders.dedup();
    assert!((1..=2).contains(&holders.len()), "{holders:?}");
    // keep: {last: 2}
    let snapshots = get_json(&b, "/api/v1/backups/snapshots");
    assert_eq!(snapshots.as_array().unwrap().len(), 2, "{snapshots}");
}
