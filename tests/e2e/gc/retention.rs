//! `gc.retention`: per repository, the newest tags and the matching ones stay, the rest go
//! (immutable tags never); a dry run names exactly what the run then deletes.

use std::time::Duration;

use oci_storage_tests::{PASSWORD, Server, USER, config_with_storage};
use serde_json::Value;

use super::{FS, check_pullable, image};
use crate::protocol::Reg;

const POLICY: &str = "gc:\n  delay: 1s\n  retention:\n    - repositories: [\"team/**\"]\n      keepLast: 2\n      keepTags: [\"v*\"]\n      untaggedOlderThan: 1s\n";

fn run(server: &Server, query: &str) -> Value {
    let resp = server
        .client()
        .post(server.at(&format!("/api/v1/gc{query}")))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let mut run = Value::Null;
    oci_storage_tests::eventually("the run ends", Duration::from_secs(30), || {
        run = server
            .client()
            .get(server.at(&location))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap()
            .json()
            .unwrap();
        run["state"] != "running"
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    run
}

fn tags(reg: &Reg, repo: &str) -> Vec<String> {
    let list: Value = reg.get(&format!("/v2/{repo}/tags/list")).json().unwrap();
    let mut tags: Vec<String> = list["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

#[test]
fn a_dry_run_names_what_the_run_deletes() {
    let config = config_with_storage(FS) + "registry:\n  immutableTags: [\"frozen\"]\n" + POLICY;
    let reg = Reg::with(Server::start_with(crate::BIN, &config, &[]));
    // Oldest first: v1, frozen, dev-1 … dev-4 (dev-3 and dev-4 are the newest two).
    for (i, tag) in ["v1", "frozen", "dev-1", "dev-2", "dev-3", "dev-4"]
        .iter()
        .enumerate()
    {
        image(&reg, "team/app", tag, 100 + i as u64, 50_000);
        std::thread::sleep(Duration::from_millis(20));
    }
    image(&reg, "other/app", "old", 200, 50_000);
    std::thread::sleep(Duration::from_millis(1100));

    let dry = run(&reg.server, "?dryRun=true");
    let mut sample: Vec<&str> = dry["report"]["retentionSample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    sample.sort();
    assert_eq!(sample, ["team/app:dev-1", "team/app:dev-2"], "{dry}");
    assert_eq!(dry["report"]["retentionTags"], 2);
    assert_eq!(tags(&reg, "team/app").len(), 6, "a dry run deletes nothing");

    let real = run(&reg.server, "");
    assert_eq!(
        real["report"]["retentionSample"],
        dry["report"]["retentionSample"]
    );
    for figure in ["manifests", "blobLinks", "contentObjects", "contentBytes"] {
        assert_eq!(
            real["report"][figure], dry["report"][figure],
            "{figure}: {dry} / {real}"
        );
    }
    assert_eq!(
        real["report"]["manifests"], 2,
        "dev-1's and dev-2's manifests: {real}"
    );
    assert_eq!(tags(&reg, "team/app"), ["dev-3", "dev-4", "frozen", "v1"]);
    assert_eq!(tags(&reg, "other/app"), ["old"], "no policy for other/**");
    for tag in ["dev-3", "dev-4", "frozen", "v1"] {
        check_pullable(&reg, "team/app", tag);
    }
    check_pullable(&reg, "other/app", "old");
    // Nothing more for the policy to delete: the next dry run names no tag.
    let out = reg.server.cli_ok(&["gc", "--dry-run"]);
    assert!(
        out.contains("5 manifests") && !out.contains("retention"),
        "{out}"
    );
}
