//! Two `oci-storage` processes over one bucket behave as one registry, on each object store:
//! pushes through one are pullable through the other at once, a chunked upload moves between
//! them, tag moves show within `registry.cacheSeconds`, racing pushes of one blob and one tag
//! corrupt nothing, and catalog, search and chart indexes converge.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use oci_storage_tests::object_stores::{
    Backend, FakeGcs, SeaweedFs, gcs_storage_yaml, s3_storage_yaml, unique_prefix,
};
use oci_storage_tests::{
    PASSWORD, Server, USER, helm_env, layout, read, require_tool, run_ok, sha256,
};
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::BIN;
use crate::protocol::{image_manifest, pseudo_random, upload_id, with_query};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// How stale another replica's view of a tag may be (`registry.cacheSeconds`).
const CACHE_SECONDS: u64 = 1;

/// Two replicas sharing one bucket and prefix.
struct Pair {
    a: Server,
    b: Server,
    client: Client,
}

impl Pair {
    fn start(backend: Backend) -> Self {
        let prefix = unique_prefix();
        let storage = match backend {
            Backend::S3 => s3_storage_yaml(SeaweedFs::shared().test_bucket(), &prefix),
            Backend::Gcs => gcs_storage_yaml(FakeGcs::shared().test_bucket(), &prefix),
            Backend::Fs => unreachable!("replicas share an object store"),
        };
        let config = format!(
            "{storage}registry:\n  cacheSeconds: {CACHE_SECONDS}\nhelm:\n  refreshSeconds: 1\nauth:\n  users:\n    - username: {USER}\n      password: {PASSWORD}\n"
        );
        Self {
            a: Server::start_with(BIN, &config, &[]),
            b: Server::start_with(BIN, &config, &[]),
            client: Client::new(),
        }
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> reqwest::blocking::Response {
        request.basic_auth(USER, Some(PASSWORD)).send().unwrap()
    }

    /// Pushes a blob monolithically through `server`.
    fn push_blob(&self, server: &Server, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let resp = self.send(
            self.client
                .post(server.at(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
                .body(bytes.to_vec()),
        );
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
        digest
    }

    /// Pushes a manifest through `server`; answers its digest.
    fn push_manifest(&self, server: &Server, repo: &str, reference: &str, body: &[u8]) -> String {
        let resp = self.send(
            self.client
                .put(server.at(&format!("/v2/{repo}/manifests/{reference}")))
                .header("Content-Type", OCI_MANIFEST)
                .body(body.to_vec()),
        );
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
        sha256(body)
    }

    /// The digest `reference` resolves to through `server` (None on 404).
    fn resolve(&self, server: &Server, repo: &str, reference: &str) -> Option<String> {
        let resp = self.send(
            self.client
                .head(server.at(&format!("/v2/{repo}/manifests/{reference}")))
                .header("Accept", OCI_MANIFEST),
        );
        match resp.status().as_u16() {
            200 => Some(
                resp.headers()["Docker-Content-Digest"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            ),
            404 => None,
            other => panic!("HEAD {reference}: {other}"),
        }
    }

    fn get_json(&self, server: &Server, path: &str) -> Value {
        let resp = self.send(self.client.get(server.at(path)));
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().unwrap()
    }
}

/// Polls `check` until it holds, for at most `within`; answers how long it took.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A small image (config + one layer) pushed through `server`; answers the manifest.
fn small_image(pair: &Pair, server: &Server, repo: &str, seed: u64) -> Vec<u8> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let config_digest = pair.push_blob(server, repo, config.as_bytes());
    let layer = pseudo_random(seed, 4096);
    let layer_digest = pair.push_blob(server, repo, &layer);
    image_manifest(
        "application/vnd.oci.image.config.v1+json",
        &config_digest,
        config.len(),
        &[(
            "application/vnd.oci.image.layer.v1.tar",
            &layer_digest,
            layer.len(),
        )],
    )
}

fn skopeo_copy(src: &str, dest: &str, scratch: &std::path::Path) {
    require_tool("skopeo");
    std::fs::create_dir_all(scratch).unwrap();
    let auth = scratch.join("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .args(["--src-creds", &creds, "--dest-creds", &creds, src, dest]),
    );
}

fn images_and_charts_cross_replicas(backend: Backend) {
    let pair = Pair::start(backend);
    // skopeo pushes through A and pulls through B, blob for blob.
    let src = pair.a.scratch("src");
    let image = layout::single_image(&src, "v1", &[2048, 3 * 1024 * 1024 + 7]);
    skopeo_copy(
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/shared/app:v1", pair.a.host),
        &pair.a.scratch("skopeo"),
    );
    let back = pair.b.scratch("back");
    skopeo_copy(
        &format!("docker://{}/shared/app:v1", pair.b.host),
        &format!("oci:{}:v1", back.display()),
        &pair.b.scratch("skopeo"),
    );
    for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
        let path = back
            .join("blobs/sha256")
            .join(&blob.digest["sha256:".len()..]);
        assert_eq!(read(&path), blob.bytes, "blob {} through B", blob.digest);
    }

    // helm pushes a chart through A; B serves it over OCI at once, and in its index and
    // search once its chart index refreshed (helm.refreshSeconds: 1).
    let helm = "helm4";
    require_tool(helm);
    let home = pair.a.scratch("helm");
    run_ok(helm_env(helm, &home).args(["create", "replicated"]));
    run_ok(helm_env(helm, &home).args(["package", "replicated", "-d", "pkg"]));
    let tgz = home.join("pkg/replicated-0.1.0.tgz");
    let login = |server: &Server| {
        run_ok(helm_env(helm, &home).args([
            "registry",
            "login",
            &server.host,
            "-u",
            USER,
            "-p",
            PASSWORD,
            "--plain-http",
        ]));
    };
    login(&pair.a);
    login(&pair.b);
    run_ok(helm_env(helm, &home).args([
        "push",
        tgz.to_str().unwrap(),
        &format!("oci://{}/charts", pair.a.host),
        "--plain-http",
    ]));
    std::fs::create_dir_all(home.join("out")).unwrap();
    run_ok(helm_env(helm, &home).args([
        "pull",
        &format!("oci://{}/charts/replicated", pair.b.host),
        "--version",
        "0.1.0",
        "--plain-http",
        "-d",
        "out",
    ]));
    assert_eq!(read(&home.join("out/replicated-0.1.0.tgz")), read(&tgz));

    let catalog = pair.get_json(&pair.b, "/v2/_catalog");
    assert_eq!(
        catalog["repositories"],
        json!(["charts/replicated", "shared/app"])
    );
    let indexed = eventually(Duration::from_secs(15), || {
        let resp = pair.send(pair.client.get(pair.b.at("/index.yaml")));
        resp.status() == 200 && resp.text().unwrap().contains("replicated")
    });
    assert!(
        indexed.is_some(),
        "B's index.yaml never listed the chart pushed through A"
    );
    let found = eventually(Duration::from_secs(15), || {
        let hits = pair.get_json(&pair.b, "/api/v1/search?q=replicated");
        hits["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|h| h["repository"] == "charts/replicated"))
    });
    assert!(
        found.is_some(),
        "B's search never found the chart pushed through A"
    );
}

fn chunked_upload_moves_between_replicas(backend: Backend) {
    let pair = Pair::start(backend);
    let repo = "moving/upload";
    let data = pseudo_random(7, 3 * 1024 * 1024 + 11);
    let cuts = [0, 1024 * 1024, 2 * 1024 * 1024 + 5, data.len()];
    let resp = pair.send(
        pair.client
            .post(pair.a.at(&format!("/v2/{repo}/blobs/uploads/"))),
    );
    assert_eq!(resp.status(), 202);
    let mut location = resp.headers()["Location"].to_str().unwrap().to_owned();
    // Chunks alternate: B, A, B.
    for (i, window) in cuts.windows(2).enumerate() {
        let server = if i % 2 == 0 { &pair.b } else { &pair.a };
        let (start, end) = (window[0], window[1]);
        let resp = pair.send(
            pair.client
                .patch(server.at(&location))
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{start}-{}", end - 1))
                .body(data[start..end].to_vec()),
        );
        assert_eq!(resp.status(), 202, "chunk {i} through replica {}", i % 2);
        assert_eq!(
            resp.headers()["Range"].to_str().unwrap(),
            format!("0-{}", end - 1)
        );
        location = resp.headers()["Location"].to_str().unwrap().to_owned();
    }
    // Progress is visible from the other replica, then A finishes the upload.
    let status = pair.send(pair.client.get(pair.b.at(&location)));
    assert_eq!(status.status(), 204);
    assert_eq!(
        status.headers()["Range"].to_str().unwrap(),
        format!("0-{}", data.len() - 1)
    );
    let digest = sha256(&data);
    let resp = pair.send(
        pair.client.put(
            pair.a
                .at(&with_query(&location, &format!("digest={digest}"))),
        ),
    );
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    for server in [&pair.a, &pair.b] {
        let blob = pair.send(
            pair.client
                .get(server.at(&format!("/v2/{repo}/blobs/{digest}"))),
        );
        assert_eq!(blob.status(), 200);
        assert!(blob.bytes().unwrap() == data, "blob intact");
    }
    // The session is gone on both.
    let id = upload_id(&location);
    for server in [&pair.a, &pair.b] {
        let gone = pair.send(
            pair.client
                .get(server.at(&format!("/v2/{repo}/blobs/uploads/{id}"))),
        );
        assert_eq!(gone.status(), 404);
    }
}

fn tag_moves_are_seen_by_the_other_replica(backend: Backend) {
    let pair = Pair::start(backend);
    let repo = "moving/tag";
    let first = small_image(&pair, &pair.a, repo, 1);
    let first_digest = pair.push_manifest(&pair.a, repo, "stable", &first);
    assert_eq!(
        pair.resolve(&pair.b, repo, "stable"),
        Some(first_digest.clone())
    );

    let second = small_image(&pair, &pair.a, repo, 2);
    let second_digest = pair.push_manifest(&pair.a, repo, "stable", &second);
    assert_eq!(
        pair.resolve(&pair.a, repo, "stable"),
        Some(second_digest.clone()),
        "A at once"
    );
    let bound = Duration::from_secs(CACHE_SECONDS) + Duration::from_millis(1500);
    let took = eventually(bound, || {
        pair.resolve(&pair.b, repo, "stable") == Some(second_digest.clone())
    });
    assert!(took.is_some(), "B still served the old tag after {bound:?}");

    // A delete through B disappears on A within the same bound.
    let resp = pair.send(
        pair.client
            .delete(pair.b.at(&format!("/v2/{repo}/manifests/stable"))),
    );
    assert_eq!(resp.status(), 202);
    let took = eventually(bound, || pair.resolve(&pair.a, repo, "stable").is_none());
    assert!(
        took.is_some(),
        "A still served a tag deleted through B after {bound:?}"
    );
    // Both manifests stay by digest.
    for digest in [&first_digest, &second_digest] {
        assert_eq!(pair.resolve(&pair.a, repo, digest).as_ref(), Some(digest));
    }
}

fn racing_pushes_of_one_blob_and_one_tag(backend: Backend) {
    let pair = Pair::start(backend);
    let repo = "racing/app";
    // Over one 8 MiB part, so racing writes go through native multipart uploads.
    let layer = pseudo_random(42, 17 * 1024 * 1024 + 3);
    let layer_digest = sha256(&layer);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = sha256(config);
    let pushed: Vec<String> = thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (pair, layer, layer_digest, config_digest) =
                    (&pair, &layer, &layer_digest, &config_digest);
                scope.spawn(move || {
                    let server = if i % 2 == 0 { &pair.a } else { &pair.b };
                    assert_eq!(pair.push_blob(server, repo, layer), *layer_digest);
                    pair.push_blob(server, repo, config);
                    let mut manifest: Value = serde_json::from_slice(&image_manifest(
                        "application/vnd.oci.image.config.v1+json",
                        config_digest,
                        config.len(),
                        &[(
                            "application/vnd.oci.image.layer.v1.tar",
                            layer_digest,
                            layer.len(),
                        )],
                    ))
                    .unwrap();
                    manifest["annotations"] = json!({ "pusher": i.to_string() });
                    let body = serde_json::to_vec(&manifest).unwrap();
                    pair.push_manifest(server, repo, "race", &body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The blob is whole and verified through both replicas.
    for server in [&pair.a, &pair.b] {
        let blob = pair.send(
            pair.client
                .get(server.at(&format!("/v2/{repo}/blobs/{layer_digest}"))),
        );
        assert_eq!(blob.status(), 200);
        assert_eq!(sha256(&blob.bytes().unwrap()), layer_digest);
    }
    // Every manifest is stored by digest; the tag names one of them, the same on both.
    for digest in &pushed {
        assert_eq!(pair.resolve(&pair.b, repo, digest).as_ref(), Some(digest));
    }
    thread::sleep(Duration::from_secs(CACHE_SECONDS) + Duration::from_millis(200));
    let on_a = pair.resolve(&pair.a, repo, "race").expect("tag on A");
    let on_b = pair.resolve(&pair.b, repo, "race").expect("tag on B");
    assert_eq!(on_a, on_b, "replicas agree on the tag");
    assert!(pushed.contains(&on_a), "the tag names a pushed manifest");
    let tags = pair.get_json(&pair.b, &format!("/v2/{repo}/tags/list"));
    assert_eq!(tags["tags"], json!(["race"]));
}

fn racing_chunks_and_duplicate_completions(backend: Backend) {
    let pair = Pair::start(backend);
    let repo = "racing/chunks";
    let resp = pair.send(
        pair.client
            .post(pair.a.at(&format!("/v2/{repo}/blobs/uploads/"))),
    );
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["Location"].to_str().unwrap().to_owned();
    // The same first chunk offset, different bytes, through both replicas at once.
    let contents = [
        pseudo_random(100, 2 * 1024 * 1024),
        pseudo_random(200, 2 * 1024 * 1024),
    ];
    let statuses: Vec<u16> = thread::scope(|scope| {
        let handles: Vec<_> = [&pair.a, &pair.b]
            .into_iter()
            .zip(&contents)
            .map(|(server, data)| {
                let (pair, location) = (&pair, &location);
                scope.spawn(move || {
                    pair.send(
                        pair.client
                            .patch(server.at(location))
                            .header("Content-Type", "application/octet-stream")
                            .header("Content-Range", format!("0-{}", data.len() - 1))
                            .body(data.clone()),
                    )
                    .status()
                    .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..2).filter(|i| statuses[*i] == 202).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one chunk is accepted: {statuses:?}"
    );
    let loser = 1 - winners[0];
    assert!(
        [409, 416].contains(&statuses[loser]),
        "the other is refused as a conflict: {statuses:?}"
    );
    let data = &contents[winners[0]];

    // Two PUTs finish the session through both replicas at once: one completes it, the other
    // is told it lost (never a server error), and the blob is the accepted chunk.
    let digest = sha256(data);
    let finish = with_query(&location, &format!("digest={digest}"));
    let statuses: Vec<u16> = thread::scope(|scope| {
        let handles: Vec<_> = [&pair.a, &pair.b]
            .into_iter()
            .map(|server| {
                let (pair, finish) = (&pair, &finish);
                scope.spawn(move || {
                    pair.send(pair.client.put(server.at(finish)))
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.contains(&201),
        "one completion succeeds: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 404, 409].contains(s)),
        "a duplicated completion is a conflict or unknown, not an error: {statuses:?}"
    );
    for server in [&pair.a, &pair.b] {
        let blob = pair.send(
            pair.client
                .get(server.at(&format!("/v2/{repo}/blobs/{digest}"))),
        );
        assert_eq!(blob.status(), 200);
        assert!(
            blob.bytes().unwrap() == *data,
            "the accepted chunk is the blob"
        );
    }
}

macro_rules! on_each_object_store {
    ($($scenario:ident),* $(,)?) => {
        mod s3 {
            $(#[test] fn $scenario() { super::$scenario(super::Backend::S3) })*
        }
        mod gcs {
            $(#[test] fn $scenario() { super::$scenario(super::Backend::Gcs) })*
        }
    };
}

on_each_object_store!(
    images_and_charts_cross_replicas,
    chunked_upload_moves_between_replicas,
    tag_moves_are_seen_by_the_other_replica,
    racing_pushes_of_one_blob_and_one_tag,
    racing_chunks_and_duplicate_completions,
);

/// Forwards TCP connections to `target`, keeping every byte clients sent (to see which S3
/// requests a process makes).
struct RecordingProxy {
    endpoint: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    fn start(target: &str) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_owned();
        let sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = Default::default();
        let record = sent.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let (mut client_r, mut upstream_w) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (mut upstream_r, mut client_w) = (upstream, client);
                let record = record.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 64 * 1024];
                    while let Ok(n) = client_r.read(&mut buf) {
                        if n == 0 || upstream_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = upstream_w.shutdown(std::net::Shutdown::Write);
                });
                thread::spawn(move || {
                    let _ = std::io::copy(&mut upstream_r, &mut client_w);
                    let _ = client_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { endpoint, sent }
    }

    /// The `prefix` of every ListObjectsV2 request seen so far, decoded.
    fn listed_prefixes(&self) -> Vec<String> {
        let sent = String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned();
        sent.lines()
            .filter(|l| l.starts_with("GET ") && l.contains("list-type=2"))
            .map(|l| {
                l.split(['?', '&', ' '])
                    .find_map(|p| p.strip_prefix("prefix="))
                    .unwrap_or("")
                    .replace("%2F", "/")
                    .replace("%2f", "/")
            })
            .collect()
    }
}

/// A replica joining a bucket that already holds images and upload sessions serves without
/// walking it: its only listings at startup are of small, dedicated prefixes (the legacy
/// catalog and the upload sessions, by background tasks that do not delay serving).
#[test]
fn startup_does_not_walk_the_bucket() {
    let pair = Pair::start(Backend::S3);
    for i in 0..3 {
        let repo = format!("walk/app{i}");
        let manifest = small_image(&pair, &pair.a, &repo, i);
        pair.push_manifest(&pair.a, &repo, "v1", &manifest);
    }
    let resp = pair.send(pair.client.post(pair.a.at("/v2/walk/open/blobs/uploads/")));
    assert_eq!(resp.status(), 202, "an open upload session");

    let proxy = RecordingProxy::start(&SeaweedFs::shared().endpoint);
    let config = std::fs::read_to_string(pair.a.scratch("config.yaml"))
        .unwrap()
        .replace(&SeaweedFs::shared().endpoint, &proxy.endpoint);
    let c = Server::start_with(BIN, &config, &[]);
    let ready = eventually(Duration::from_secs(10), || {
        pair.client
            .get(c.at("/readyz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert!(ready.is_some(), "the new replica became ready");
    // It serves at once, from storage.
    assert!(pair.resolve(&c, "walk/app1", "v1").is_some());
    let seen = String::from_utf8_lossy(&proxy.sent.lock().unwrap()).into_owned();
    assert!(
        seen.contains("walk/app1/_tags/v1"),
        "the replica's storage traffic goes through the recording proxy"
    );
    let prefix = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("prefix: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    for listed in proxy.listed_prefixes() {
        let rel = listed
            .strip_prefix(&format!("{prefix}/"))
            .unwrap_or(&listed);
        assert!(
            ["catalog/", "uploads/", "repositories/walk/app1/_tags/"]
                .iter()
                .any(|allowed| rel.starts_with(allowed)),
            "startup listed {listed:?}"
        );
    }
}
