//! `/api/v1/gc`: administrators start runs (dry or real) and follow them; every run, the
//! command line's too, is in the history every replica shows; others get 403, a second job 409.

use std::time::Duration;

use oci_storage_tests::{PASSWORD, Server, USER, config_with_storage};
use reqwest::Method;
use serde_json::Value;

use super::{FS, GC, image};
use crate::protocol::Reg;

fn call(server: &Server, method: Method, path: &str, user: &str) -> (u16, Value, Option<String>) {
    let resp = server
        .client()
        .request(method, server.at(path))
        .basic_auth(user, Some(PASSWORD))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, resp.json().unwrap_or(Value::Null), location)
}

fn follow(server: &Server, location: &str) -> Value {
    let mut run = Value::Null;
    oci_storage_tests::eventually("the run ends", Duration::from_secs(30), || {
        run = call(server, Method::GET, location, USER).1;
        run["state"] != "running"
    });
    run
}

#[test]
fn runs_through_the_rest_api() {
    let config = format!(
        "{}    - {{username: bob, password: {PASSWORD}}}\n{GC}",
        config_with_storage(FS)
    );
    let reg = Reg::with(Server::start_with(crate::BIN, &config, &[]));
    let server = &reg.server;
    image(&reg, "api/app", "v1", 21, 300_000);
    assert_eq!(reg.delete("/v2/api/app/manifests/v1").status(), 202);
    std::thread::sleep(Duration::from_millis(1100));

    let (status, started, location) = call(server, Method::POST, "/api/v1/gc?dryRun=true", USER);
    assert_eq!(status, 202, "{started}");
    let location = location.unwrap();
    assert_eq!(started["status"], location);
    let dry = follow(server, &location);
    assert_eq!(dry["state"], "succeeded", "{dry}");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["startedBy"], USER);
    let would = dry["report"]["contentBytes"].as_u64().unwrap();
    assert!(would >= 300_000, "{dry}");

    let (status, _, location) = call(server, Method::POST, "/api/v1/gc", USER);
    assert_eq!(status, 202);
    let run = follow(server, &location.unwrap());
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["report"]["contentBytes"].as_u64().unwrap(),
        would,
        "{run}"
    );
    assert_eq!(run["report"]["manifests"], 1, "{run}");

    // The command line's run is in the same history.
    server.cli_ok(&["gc", "--dry-run"]);
    let (status, status_doc, _) = call(server, Method::GET, "/api/v1/gc", USER);
    assert_eq!(status, 200);
    assert_eq!(status_doc["delay"], "1s");
    assert_eq!(status_doc["untagged"], true);
    let runs = status_doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{status_doc}");
    assert!(
        runs[0]["startedBy"].as_str().unwrap().starts_with("cli:"),
        "{status_doc}"
    );
    assert_eq!(runs[1]["id"], run["id"]);
    assert_eq!(runs[2]["id"], dry["id"]);

    // Another job holds the lease: 409 naming it; a dry run needs no lease.
    let lease = server.hold_job_lease("replica-b/1/abcdef", "backup");
    let (status, problem, _) = call(server, Method::POST, "/api/v1/gc", USER);
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("replica-b"),
        "{problem}"
    );
    let (_, status_doc, _) = call(server, Method::GET, "/api/v1/gc", USER);
    assert!(
        status_doc["busy"].as_str().unwrap().starts_with("backup "),
        "{status_doc}"
    );
    let (status, _, _) = call(server, Method::POST, "/api/v1/gc?dryRun=true", USER);
    assert_eq!(status, 202);
    std::fs::remove_file(lease).unwrap();

    // Not for others.
    for (method, path) in [(Method::GET, "/api/v1/gc"), (Method::POST, "/api/v1/gc")] {
        let (status, _, _) = call(server, method, path, "bob");
        assert_eq!(status, 403);
    }
    let (status, _, _) = call(server, Method::GET, "/api/v1/gc/runs/nonsense", USER);
    assert_eq!(status, 404);
}
