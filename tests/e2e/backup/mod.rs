//! Backup and restore (issue 13) with real clients and real object stores: a registry filled by
//! `helm push`, the ChartMuseum API and `skopeo copy` is backed up with the CLI, restored into a
//! fresh registry on another backend, and must then serve the same bytes to the same clients.

mod api;
mod hardening;
mod roundtrip;
mod schedule;

use std::path::{Path, PathBuf};

use oci_storage_tests::layout::{self, Image};
use oci_storage_tests::{PASSWORD, Server, USER, helm_env, read, run_ok, sha256};
use serde_json::Value;

/// What [`populate`] pushed, to check against a restored registry.
pub struct Pushed {
    /// `helm package` archives pushed with `helm push` (repository `charts/webapp`).
    pub oci_charts: Vec<PathBuf>,
    /// Uploaded through ChartMuseum's API (lands in `charts/worker`).
    pub chartmuseum_chart: PathBuf,
    /// `multi/arch:multi`, an index of two images.
    pub multi_arch: Vec<Image>,
    pub index_digest: String,
}

fn creds() -> String {
    format!("{USER}:{PASSWORD}")
}

fn helm_login(server: &Server, home: &Path) {
    run_ok(helm_env("helm", home).args([
        "registry",
        "login",
        &server.host,
        "-u",
        USER,
        "-p",
        PASSWORD,
        "--insecure",
    ]));
}

/// Fills a registry: two chart versions by `helm push`, one by ChartMuseum upload, and a
/// multi-arch image by `skopeo copy --all`.
pub fn populate(server: &Server) -> Pushed {
    oci_storage_tests::require_tool("helm");
    oci_storage_tests::require_tool("skopeo");
    let home = server.scratch("helm-src");
    std::fs::create_dir_all(&home).unwrap();
    helm_login(server, &home);
    let oci_charts = vec![
        crate::helm_repo::package("helm", &home, "webapp", "1.0.0", "Web application"),
        crate::helm_repo::package("helm", &home, "webapp", "1.1.0", "Web application"),
    ];
    for archive in &oci_charts {
        run_ok(helm_env("helm", &home).args([
            "push",
            archive.to_str().unwrap(),
            &format!("oci://{}/charts", server.host),
            "--plain-http",
        ]));
    }
    let chartmuseum_chart =
        crate::helm_repo::package("helm", &home, "worker", "0.3.0", "Background worker");
    let resp = server
        .client()
        .post(server.at("/api/charts"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/gzip")
        .body(read(&chartmuseum_chart))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());

    let src = server.scratch("layout");
    let (index, multi_arch) = layout::multi_arch(&src, "multi", &["amd64", "arm64"]);
    run_ok(crate::skopeo::skopeo(server).args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(),
        &format!("oci:{}:multi", src.display()),
        &format!("docker://{}/multi/arch:multi", server.host),
    ]));
    Pushed {
        oci_charts,
        chartmuseum_chart,
        multi_arch,
        index_digest: index.digest,
    }
}

fn get_json(server: &Server, path: &str) -> Value {
    let resp = server
        .client()
        .get(server.at(path))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().unwrap()
}

/// Every repository, tag and manifest (as exact bytes, by digest) the registry serves.
pub fn contents(server: &Server) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let catalog = get_json(server, "/v2/_catalog");
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let tags = get_json(server, &format!("/v2/{repo}/tags/list"));
        for tag in tags["tags"].as_array().unwrap() {
            let tag = tag.as_str().unwrap();
            let resp = server
                .client()
                .get(server.at(&format!("/v2/{repo}/manifests/{tag}")))
                .basic_auth(USER, Some(PASSWORD))
                .header(
                    "accept",
                    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
                )
                .send()
                .unwrap();
            assert_eq!(resp.status(), 200, "{repo}:{tag}");
            out.push((
                repo.to_owned(),
                tag.to_owned(),
                sha256(&resp.bytes().unwrap()),
            ));
        }
    }
    out
}

/// What the web interface's home page lists (the search it shares with the REST API):
/// repositories, kinds, chart versions and descriptions.
pub fn listing(server: &Server) -> Value {
    get_json(server, "/api/v1/search?perPage=200")
}

/// The chart versions of index.json: (name, version, digest, created).
pub fn chart_index(server: &Server) -> Vec<(String, String, String, String)> {
    let index = get_json(server, "/index.json");
    let mut out = Vec::new();
    for (name, versions) in index["entries"].as_object().unwrap() {
        for v in versions.as_array().unwrap() {
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            out.push((
                name.clone(),
                field("version"),
                field("digest"),
                field("created"),
            ));
        }
    }
    out.sort();
    out
}

/// A restored registry serves what was pushed to the original, to the same clients, byte for
/// byte: `helm pull`, `skopeo copy --all`, `helm search repo`.
pub fn check_restored(server: &Server, pushed: &Pushed) {
    let home = server.scratch("helm-check");
    std::fs::create_dir_all(&home).unwrap();
    helm_login(server, &home);
    let pulled = home.join("pulled");
    std::fs::create_dir_all(&pulled).unwrap();
    std::fs::create_dir_all(home.join("classic")).unwrap();
    for archive in &pushed.oci_charts {
        let name = archive.file_name().unwrap().to_str().unwrap();
        let version = name.trim_start_matches("webapp-").trim_end_matches(".tgz");
        run_ok(helm_env("helm", &home).args([
            "pull",
            &format!("oci://{}/charts/webapp", server.host),
            "--version",
            version,
            "--plain-http",
            "-d",
            pulled.to_str().unwrap(),
        ]));
        assert_eq!(
            sha256(&read(&pulled.join(name))),
            sha256(&read(archive)),
            "helm pull of {name} is byte-identical"
        );
    }
    run_ok(helm_env("helm", &home).args([
        "repo",
        "add",
        "restored",
        &server.url,
        "--username",
        USER,
        "--password",
        PASSWORD,
    ]));
    let search =
        run_ok(helm_env("helm", &home).args(["search", "repo", "restored/", "--versions"]));
    for expected in [
        "restored/webapp",
        "1.1.0",
        "1.0.0",
        "restored/worker",
        "0.3.0",
    ] {
        assert!(search.contains(expected), "{expected} in:\n{search}");
    }
    run_ok(helm_env("helm", &home).args([
        "pull",
        "restored/worker",
        "--version",
        "0.3.0",
        "-d",
        home.join("classic").to_str().unwrap(),
    ]));
    assert_eq!(
        sha256(&read(&home.join("classic/worker-0.3.0.tgz"))),
        sha256(&read(&pushed.chartmuseum_chart)),
        "the ChartMuseum upload comes back byte-identical"
    );

    let back = server.scratch("skopeo-back");
    run_ok(crate::skopeo::skopeo(server).args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-creds",
        &creds(),
        &format!("docker://{}/multi/arch:multi", server.host),
        &format!("oci:{}:multi", back.display()),
    ]));
    let index_path = back
        .join("blobs/sha256")
        .join(&pushed.index_digest["sha256:".len()..]);
    assert!(index_path.exists(), "the index comes back under its digest");
    for image in &pushed.multi_arch {
        for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
            let path = back
                .join("blobs/sha256")
                .join(&blob.digest["sha256:".len()..]);
            assert_eq!(read(&path), blob.bytes, "blob {}", blob.digest);
        }
    }
}

/// The snapshot records `backup list --json` prints.
pub fn snapshots(server: &Server) -> Vec<Value> {
    let out = server.cli_ok(&["backup", "list", "--json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}
