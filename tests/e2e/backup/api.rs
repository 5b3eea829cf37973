//! The REST API of backups: start, follow, list, show, verify, restore (dry run and real),
//! delete; 409 while another job holds the lease; administrators with a password only;
//! problem JSON throughout.

use std::time::{Duration, Instant};

use oci_storage_tests::layout;
use oci_storage_tests::{Server, run_ok};
use reqwest::Method;
use serde_json::{Value, json};

const PW: &str = "Backup-Passw0rd-7c1d";

fn config(backup: &str) -> String {
    format!(
        "storage: {{type: fs, fs: {{path: data}}}}\nauth:\n  admins: [root]\n  users:\n    - {{username: root, password: {PW}}}\n    - {{username: alice, password: {PW}}}\n{backup}"
    )
}

fn call(
    server: &Server,
    method: Method,
    path: &str,
    user: &str,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = server
        .client()
        .request(method, server.at(path))
        .basic_auth(user, Some(PW));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    if status >= 400 {
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
    (status, resp.json().unwrap_or(Value::Null), location)
}

/// Polls a job until it ends; answers its last state.
fn wait_for(server: &Server, location: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job, _) = call(server, Method::GET, location, "root", None);
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job did not end: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the image of an OCI layout to `repo_tag` with skopeo, as root.
fn copy_layout(server: &Server, src: &std::path::Path, repo_tag: &str) {
    run_ok(crate::skopeo::skopeo(server).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("root:{PW}"),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/{repo_tag}", server.host),
    ]));
}

fn push_image(server: &Server, repo_tag: &str) {
    let src = server.scratch(&format!("layout-{}", repo_tag.replace([':', '/'], "-")));
    layout::single_image(&src, "v1", &[4096, 200_000]);
    copy_layout(server, &src, repo_tag);
}

#[test]
fn backups_through_the_rest_api() {
    oci_storage_tests::require_tool("skopeo");
    let server = Server::start_with(
        crate::BIN,
        &config("backup:\n  enabled: true\n  target: {type: fs, path: backups}\n"),
        &[],
    );
    push_image(&server, "team/app:v1");

    let (status, info, _) = call(&server, Method::GET, "/api/v1/backups", "root", None);
    assert_eq!(status, 200, "{info}");
    assert!(
        info["target"].as_str().unwrap().starts_with("fs:"),
        "{info}"
    );
    assert!(info["running"].is_null());

    // Start, follow, list.
    let (status, started, location) = call(
        &server,
        Method::POST,
        "/api/v1/backups",
        "root",
        Some(json!({})),
    );
    assert_eq!(status, 202, "{started}");
    let location = location.unwrap();
    assert_eq!(started["status"], location);
    let job = wait_for(&server, &location);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "backup");
    assert_eq!(job["startedBy"], "root");
    assert_eq!(job["objectsDone"], job["objectsTotal"], "{job}");
    assert!(job["bytesDone"].as_u64().unwrap() > 200_000, "{job}");
    let snapshot_id = job["snapshot"].as_str().unwrap().to_owned();
    assert_eq!(snapshot_id, started["jobId"]);

    let (_, list, _) = call(
        &server,
        Method::GET,
        "/api/v1/backups/snapshots",
        "root",
        None,
    );
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], snapshot_id.as_str());
    assert!(list[0].get("repositoryList").is_none());
    let (status, shown, _) = call(
        &server,
        Method::GET,
        "/api/v1/backups/snapshots/latest",
        "root",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(shown["repositoryList"][0]["name"], "team/app");
    assert_eq!(shown["repositoryList"][0]["tags"], 1);
    let (_, jobs, _) = call(
        &server,
        Method::GET,
        "/api/v1/backups/jobs?limit=5",
        "root",
        None,
    );
    assert_eq!(jobs[0]["id"], started["jobId"], "{jobs}");

    // Verify.
    let path = format!("/api/v1/backups/snapshots/{snapshot_id}/verify");
    let (status, _, location) = call(&server, Method::POST, &path, "root", None);
    assert_eq!(status, 202);
    let job = wait_for(&server, &location.unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["missing"], json!([]), "{job}");
    assert!(job["result"]["objects"].as_u64().unwrap() >= 4, "{job}");

    // Restore: the tag moved since the snapshot stays unless overwrite.
    push_image(&server, "team/other:v1");
    let src = server.scratch("moved");
    let moved = layout::single_image(&src, "v1", &[5555]);
    copy_layout(&server, &src, "team/app:v1");
    let path = format!("/api/v1/backups/snapshots/{snapshot_id}/restore");
    let (status, plan, _) = call(
        &server,
        Method::POST,
        &path,
        "root",
        Some(json!({"dryRun": true})),
    );
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["tagsKeptNewer"][0]["tag"], "v1", "{plan}");
    assert_eq!(
        plan["tagsKeptNewer"][0]["from"],
        moved.manifest.digest.as_str(),
        "{plan}"
    );
    assert_eq!(plan["repositoriesMerged"], 1, "{plan}");
    let (status, plan, _) = call(
        &server,
        Method::POST,
        &path,
        "root",
        Some(json!({"dryRun": true, "overwrite": true})),
    );
    assert_eq!(status, 200);
    assert_eq!(plan["tagsMoved"].as_array().unwrap().len(), 1, "{plan}");
    let (status, _, location) = call(
        &server,
        Method::POST,
        &path,
        "root",
        Some(json!({"overwrite": true})),
    );
    assert_eq!(status, 202);
    let job = wait_for(&server, &location.unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    let resp = server
        .client()
        .head(server.at("/v2/team/app/manifests/v1"))
        .basic_auth("root", Some(PW))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_ne!(
        resp.headers()["docker-content-digest"].to_str().unwrap(),
        moved.manifest.digest,
        "the tag is back where the snapshot had it"
    );

    // Another job holding the lease (here: another replica's, written into storage) → 409.
    let lease = server.hold_job_lease("replica-b/1/abcdef", "backup");
    let (status, problem, _) = call(&server, Method::POST, "/api/v1/backups", "root", None);
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("replica-b"),
        "{problem}"
    );
    std::fs::remove_file(&lease).unwrap();

    // Delete: the snapshot and the objects nothing else needs.
    let path = format!("/api/v1/backups/snapshots/{snapshot_id}");
    let (status, _, location) = call(&server, Method::DELETE, &path, "root", None);
    assert_eq!(status, 202);
    let job = wait_for(&server, &location.unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["result"]["objects"].as_u64().unwrap() >= 4, "{job}");
    let (_, list, _) = call(
        &server,
        Method::GET,
        "/api/v1/backups/snapshots",
        "root",
        None,
    );
    assert_eq!(list, json!([]));
    let left: Vec<_> = walk(&server.scratch("backups/blobs"));
    assert!(left.is_empty(), "{left:?}");
    let (status, _, _) = call(&server, Method::GET, &path, "root", None);
    assert_eq!(status, 404);

    // Not for others, nor for an administrator's API token.
    let (status, _, _) = call(&server, Method::GET, "/api/v1/backups", "alice", None);
    assert_eq!(status, 403);
    let (status, _, _) = call(&server, Method::POST, "/api/v1/backups", "alice", None);
    assert_eq!(status, 403);
    let (status, token, _) = call(
        &server,
        Method::POST,
        "/api/v1/tokens",
        "root",
        Some(json!({"name": "ci", "repositories": ["**"], "actions": ["pull", "push", "delete"]})),
    );
    assert_eq!(status, 201, "{token}");
    let resp = server
        .client()
        .post(server.at("/api/v1/backups"))
        .basic_auth("root", Some(token["token"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn backups_not_enabled_is_404() {
    let server = Server::start_with(crate::BIN, &config(""), &[]);
    let (status, problem, _) = call(&server, Method::POST, "/api/v1/backups", "root", None);
    assert_eq!(status, 404);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("backup.enabled"),
        "{problem}"
    );
}
