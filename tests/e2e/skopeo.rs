//! skopeo copies images (multi-layer, multi-arch, Docker schema2) into the registry and back;
//! digests must survive the round trip.

use std::process::Command;

use oci_storage_tests::layout::{self, OCI_INDEX};
use oci_storage_tests::{PASSWORD, Server, USER, read, require_tool, run, run_ok, sha256};

pub(crate) fn skopeo(server: &Server) -> Command {
    require_tool("skopeo");
    let auth = server.scratch("auth.json");
    if !auth.exists() {
        std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    }
    let mut cmd = Command::new("skopeo");
    cmd.env("REGISTRY_AUTH_FILE", &auth);
    cmd
}

/// `skopeo inspect --raw` of a reference: the manifest exactly as served.
fn inspect_raw(server: &Server, reference: &str) -> String {
    run_ok(skopeo(server).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds(),
        reference,
    ]))
}

fn creds() -> String {
    format!("{USER}:{PASSWORD}")
}

#[test]
fn multi_layer_image_round_trip() {
    let server = super::server();
    let src = server.scratch("src");
    let image = layout::single_image(&src, "v1", &[1024, 300_000, 2 * 1024 * 1024]);
    let dest = format!("docker://{}/org/team/app:v1", server.host);
    run_ok(skopeo(&server).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(),
        &format!("oci:{}:v1", src.display()),
        &dest,
    ]));

    // The manifest is served byte for byte.
    let raw = inspect_raw(&server, &dest);
    assert_eq!(sha256(raw.as_bytes()), image.manifest.digest);
    let config = run_ok(skopeo(&server).args([
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds(),
        &dest,
    ]));
    assert_eq!(sha256(config.as_bytes()), image.config.digest);

    // And back out into a fresh layout: every blob identical.
    let back = server.scratch("back");
    run_ok(skopeo(&server).args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds(),
        &dest,
        &format!("oci:{}:v1", back.display()),
    ]));
    for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
        let path = back
            .join("blobs/sha256")
            .join(&blob.digest["sha256:".len()..]);
        assert_eq!(read(&path), blob.bytes, "blob {}", blob.digest);
    }

    let tags = run_ok(skopeo(&server).args([
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &creds(),
        &format!("docker://{}/org/team/app", server.host),
    ]));
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));
}

#[test]
fn multi_arch_index_round_trip() {
    let server = super::server();
    let src = server.scratch("src");
    let (index, images) = layout::multi_arch(&src, "multi", &["amd64", "arm64"]);
    let dest = format!("docker://{}/multi/arch:multi", server.host);
    run_ok(skopeo(&server).args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(),
        &format!("oci:{}:multi", src.display()),
        &dest,
    ]));
    let raw = inspect_raw(&server, &dest);
    assert_eq!(
        sha256(raw.as_bytes()),
        index.digest,
        "index kept byte for byte"
    );
    let served: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(served["mediaType"], OCI_INDEX);

    // One platform by digest, then the whole index back out.
    let arm = &images[1];
    let one = inspect_raw(
        &server,
        &format!(
            "docker://{}/multi/arch@{}",
            server.host, arm.manifest.digest
        ),
    );
    assert_eq!(sha256(one.as_bytes()), arm.manifest.digest);
    let back = server.scratch("back");
    run_ok(skopeo(&server).args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-creds",
        &creds(),
        &dest,
        &format!("oci:{}:multi", back.display()),
    ]));
    for image in &images {
        for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
            let path = back
                .join("blobs/sha256")
                .join(&blob.digest["sha256:".len()..]);
            assert_eq!(read(&path), blob.bytes, "blob {}", blob.digest);
        }
    }
}

#[test]
fn docker_schema2_and_delete() {
    let server = super::server();
    let src = server.scratch("src");
    layout::single_image(&src, "v2", &[5000, 70_000]);
    let dest = format!("docker://{}/docker/format:v2", server.host);
    run_ok(skopeo(&server).args([
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(),
        &format!("oci:{}:v2", src.display()),
        &dest,
    ]));
    let raw = inspect_raw(&server, &dest);
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let head = server
        .client()
        .head(server.at("/v2/docker/format/manifests/v2"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(
        head.headers()["content-type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        head.headers()["docker-content-digest"].to_str().unwrap(),
        sha256(raw.as_bytes())
    );

    run_ok(skopeo(&server).args(["delete", "--tls-verify=false", "--creds", &creds(), &dest]));
    let gone = run(skopeo(&server).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds(),
        &dest,
    ]));
    assert!(!gone.status.success(), "deleted image is gone");
}

#[test]
fn wrong_credentials_are_refused() {
    let server = super::server();
    let src = server.scratch("src");
    layout::single_image(&src, "v1", &[100]);
    let out = run(skopeo(&server).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{USER}:wrong-password"),
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/denied/app:v1", server.host),
    ]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("unauthorized") || stderr.contains("authentication"),
        "{stderr}"
    );
    let anonymous = run(skopeo(&server).args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/denied/app:v1", server.host),
    ]));
    assert!(!anonymous.status.success(), "anonymous push is refused");
}
