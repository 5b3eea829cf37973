//! Options of the object-store backends seen from clients: presigned download redirects.

use std::process::Command;

use oci_storage_tests::object_stores::{S3_SECRET_KEY, SeaweedFs, s3_storage_yaml, unique_prefix};
use oci_storage_tests::{PASSWORD, Server, USER, layout, read, require_tool, run_ok, sha256};
use reqwest::blocking::Client;
use reqwest::redirect::Policy;

use crate::BIN;
use crate::protocol::pseudo_random;

fn redirecting_server() -> Server {
    let storage = s3_storage_yaml(SeaweedFs::shared().test_bucket(), &unique_prefix());
    let config = format!(
        "{storage}    redirectDownloads: true\n    redirectExpirySeconds: 120\nauth:\n  users:\n    - username: {USER}\n      password: {PASSWORD}\n"
    );
    Server::start_with(BIN, &config, &[])
}

#[test]
fn s3_blob_downloads_redirect_to_presigned_urls() {
    let server = redirecting_server();
    let client = Client::builder().redirect(Policy::none()).build().unwrap();
    let data = pseudo_random(5, 3 * 1024 * 1024 + 1);
    let digest = sha256(&data);
    let resp = client
        .post(server.at(&format!("/v2/direct/app/blobs/uploads/?digest={digest}")))
        .basic_auth(USER, Some(PASSWORD))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);

    // GET answers 307 to the store, signed for a limited time, without the secret.
    let blob = server.at(&format!("/v2/direct/app/blobs/{digest}"));
    let resp = client
        .get(&blob)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["Docker-Content-Digest"], digest.as_str());
    let location = resp.headers()["Location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&SeaweedFs::shared().endpoint),
        "{location}"
    );
    assert!(location.contains("X-Amz-Signature=") && location.contains("X-Amz-Expires=120"));
    assert!(
        !location.contains(S3_SECRET_KEY),
        "the secret never leaves the registry"
    );
    assert!(!server.logs().contains(S3_SECRET_KEY));
    // The URL serves the blob, and ranges, to a client without registry credentials.
    let direct = client.get(&location).send().unwrap();
    assert_eq!(direct.status(), 200);
    assert!(direct.bytes().unwrap() == data);
    let ranged = client
        .get(&location)
        .header("Range", "bytes=10-19")
        .send()
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert!(ranged.bytes().unwrap() == data[10..20]);

    // HEAD is answered by the registry; access control comes before any redirect.
    let head = client
        .head(&blob)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["Content-Length"],
        data.len().to_string().as_str()
    );
    let anonymous = client.get(&blob).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().get("Location").is_none());
    let other_repo = client
        .get(server.at(&format!("/v2/elsewhere/blobs/{digest}")))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(
        other_repo.status(),
        404,
        "no redirect for a blob the repository lacks"
    );
}

#[test]
fn skopeo_pulls_through_presigned_redirects() {
    require_tool("skopeo");
    let server = redirecting_server();
    let src = server.scratch("src");
    let image = layout::single_image(&src, "v1", &[4096, 2 * 1024 * 1024]);
    let auth = server.scratch("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    let dest = format!("docker://{}/direct/image:v1", server.host);
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["copy", "--dest-tls-verify=false", "--dest-creds", &creds])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(&dest),
    );
    let back = server.scratch("back");
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["copy", "--src-tls-verify=false", "--src-creds", &creds])
            .arg(&dest)
            .arg(format!("oci:{}:v1", back.display())),
    );
    for blob in image.layers.iter().chain([&image.config]) {
        let path = back
            .join("blobs/sha256")
            .join(&blob.digest["sha256:".len()..]);
        assert_eq!(read(&path), blob.bytes, "blob {}", blob.digest);
    }
    // The layers really came from the store: the registry logged redirects for them.
    assert!(server.logs().contains("status=307"), "{}", server.logs());
}
