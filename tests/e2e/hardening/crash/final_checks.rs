//! After the last crash: a process that saw none of it serves everything acknowledged, and
//! the store itself holds no torn blob.

use std::collections::BTreeSet;
use std::path::Path;

use oci_storage_tests::object_stores::{Backend, SeaweedFs, s3_storage_yaml};
use oci_storage_tests::{PASSWORD, Server, USER, sha256};

use super::ledger::{Outcome, acknowledged_blobs};
use super::transport::http_client;
use crate::protocol::OCI_MANIFEST;

/// Where the server keeps its blobs, to read them behind its back.
pub enum Store {
    Fs,
    S3 { bucket: String, prefix: String },
}

impl Store {
    /// The `storage:` section of the server's configuration.
    pub fn storage_yaml(&self) -> String {
        match self {
            Self::Fs => Backend::Fs.fresh_storage_yaml(),
            Self::S3 { bucket, prefix } => s3_storage_yaml(bucket, prefix),
        }
    }

    /// Every blob object the store holds (`blobs/sha256/<hex>`), as (digest, bytes).
    fn blobs(&self, server: &Server) -> Vec<(String, Vec<u8>)> {
        match self {
            Self::Fs => fs_blobs(&server.data_dir()),
            Self::S3 { bucket, prefix } => {
                let s3 = SeaweedFs::shared();
                let keys = s3.list_keys(bucket, &format!("{prefix}/blobs/sha256/"));
                keys.iter()
                    .map(|key| {
                        let hex = key.rsplit('/').next().unwrap();
                        (format!("sha256:{hex}"), s3.get_object(bucket, key))
                    })
                    .collect()
            }
        }
    }
}

fn fs_blobs(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hidden names are temporary files and lock sidecars, never served.
        if !name.starts_with('.') {
            out.push((
                format!("sha256:{name}"),
                std::fs::read(entry.path()).unwrap(),
            ));
        }
    }
    out
}

/// Everything acknowledged is served byte for byte, tags resolve to the last acknowledged
/// manifest and are exactly those listed, and every repository pushed to is in the catalog.
pub fn everything_acknowledged_is_served(server: &Server, outcomes: &[Outcome]) {
    let client = http_client();
    let get = |path: &str, accept: Option<&str>| {
        let mut request = client.get(server.at(path)).basic_auth(USER, Some(PASSWORD));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let resp = request.send().unwrap();
        let status = resp.status().as_u16();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, digest, resp.bytes().unwrap().to_vec())
    };
    for out in outcomes {
        for blob in &out.blobs {
            let (status, _, body) = get(&format!("/v2/{}/blobs/{}", out.repo, blob.digest), None);
            assert_eq!(
                status, 200,
                "acknowledged blob {} of {}",
                blob.digest, out.repo
            );
            assert!(
                body.len() == blob.len && sha256(&body) == blob.digest,
                "blob {} of {} served {} bytes hashing to {}",
                blob.digest,
                out.repo,
                body.len(),
                sha256(&body)
            );
        }
        for (digest, bytes) in &out.configs {
            let (status, _, body) = get(&format!("/v2/{}/blobs/{digest}", out.repo), None);
            assert_eq!((status, &body), (200, bytes), "config {digest}");
        }
        for (digest, bytes) in &out.manifests {
            let path = format!("/v2/{}/manifests/{digest}", out.repo);
            let (status, _, body) = get(&path, Some(OCI_MANIFEST));
            assert_eq!(
                (status, &body),
                (200, bytes),
                "acknowledged manifest {path}"
            );
        }
        for (tag, digest) in &out.tags {
            let path = format!("/v2/{}/manifests/{tag}", out.repo);
            let (status, served, body) = get(&path, Some(OCI_MANIFEST));
            assert_eq!(status, 200, "{path}");
            assert_eq!(served.as_deref(), Some(digest.as_str()), "{path}");
            assert_eq!(sha256(&body), *digest, "{path}");
        }
        // Every tag pushed was acknowledged in the end, so the listing is exactly those.
        let (status, _, body) = get(&format!("/v2/{}/tags/list?n=1000", out.repo), None);
        assert_eq!(status, 200);
        let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let listed: BTreeSet<String> = listed["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, out.tags.keys().cloned().collect(), "{}", out.repo);
        assert!(out.tags.contains_key("latest") || out.images == 0);
    }
    let (status, _, body) = get("/v2/_catalog?n=1000", None);
    assert_eq!(status, 200);
    let catalog: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for out in outcomes.iter().filter(|o| o.images > 0) {
        assert!(
            catalog["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == out.repo.as_str()),
            "{} in the catalog: {catalog}",
            out.repo
        );
    }
}

/// Every blob object in the store, served or not, is whole (a later push of the same digest
/// only links what is stored, so a torn object would surface then), and every acknowledged
/// blob is there. Answers how many objects were checked.
pub fn every_stored_blob_is_whole(store: &Store, server: &Server, outcomes: &[Outcome]) -> usize {
    let stored = store.blobs(server);
    for (digest, bytes) in &stored {
        assert_eq!(
            sha256(bytes),
            *digest,
            "stored blob object {digest} ({} bytes) is not its content",
            bytes.len()
        );
    }
    let stored_digests: BTreeSet<&String> = stored.iter().map(|(d, _)| d).collect();
    for digest in acknowledged_blobs(outcomes) {
        assert!(stored_digests.contains(digest), "{digest} is stored");
    }
    stored.len()
}
