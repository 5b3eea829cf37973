//! A registry whose object store is reached through a [`FaultProxy`], and what the tests
//! expect of it while the store fails.

use std::time::{Duration, Instant};

use oci_storage_tests::fault_proxy::FaultProxy;
use oci_storage_tests::object_stores::{
    Backend, FakeGcs, SeaweedFs, gcs_storage_yaml, s3_storage_yaml, unique_prefix,
};
use oci_storage_tests::{Server, config_with_storage, sha256};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;

use crate::BIN;
use crate::protocol::{OCI_MANIFEST, Reg};

/// An image pushed while the store was up, pulled again to see the registry works.
pub struct Image {
    pub repo: &'static str,
    pub tag: &'static str,
    pub manifest: Vec<u8>,
    pub layer: Vec<u8>,
}

pub struct Setup {
    pub reg: Reg,
    pub proxy: FaultProxy,
    pub backend: Backend,
}

impl Setup {
    /// A registry on `backend` (s3 or gcs) behind a proxy that passes traffic, once ready.
    pub fn start(backend: Backend) -> Self {
        let prefix = unique_prefix();
        let (storage, real) = match backend {
            Backend::S3 => {
                let store = SeaweedFs::shared();
                // 5 MiB parts: a 12 MiB blob is a multipart upload, under way while it streams.
                let yaml = s3_storage_yaml(store.test_bucket(), &prefix) + "    partSizeMib: 5\n";
                (yaml, &store.endpoint)
            }
            Backend::Gcs => {
                let store = FakeGcs::shared();
                let yaml = gcs_storage_yaml(store.test_bucket(), &prefix);
                (yaml, &store.endpoint)
            }
            Backend::Fs => unreachable!("an object store"),
        };
        let proxy = FaultProxy::in_front_of(real);
        let storage = storage.replace(real.as_str(), proxy.endpoint());
        assert!(storage.contains(proxy.endpoint()), "{storage}");
        let server = Server::start_with(BIN, &config_with_storage(&storage), &[]);
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Generous: a request that does not answer in this time hangs.
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let setup = Self {
            reg: Reg::with_client(server, client),
            proxy,
            backend,
        };
        setup.wait_ready(200);
        setup
    }

    /// Sends, failing the test with the server's log when no answer comes at all.
    pub fn send(&self, request: RequestBuilder, what: &str) -> Response {
        request
            .send()
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}\n{}", self.reg.server.logs()))
    }

    pub fn status(&self, method: Method, path: &str) -> u16 {
        self.send(self.reg.req(method, path), path)
            .status()
            .as_u16()
    }

    /// Polls `/readyz` until it answers `status`. Every probe must answer (within the
    /// client's timeout): a readiness check that hangs is a failure.
    pub fn wait_ready(&self, status: u16) {
        let probe = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let resp = probe
                .get(self.reg.server.at("/readyz"))
                .send()
                .unwrap_or_else(|e| {
                    panic!(
                        "/readyz did not answer ({:?} store): {e}",
                        self.proxy.fault()
                    )
                });
            let got = resp.status().as_u16();
            let body = resp.text().unwrap();
            if got == status {
                let expected = if status == 200 {
                    "ready"
                } else {
                    "storage unavailable"
                };
                assert_eq!(body, expected);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz stayed {got} ({body}), expected {status}, with the store {:?}",
                self.proxy.fault()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A 5xx answer with OCI error JSON that names no store detail.
    pub fn expect_store_error(&self, resp: Response, what: &str) {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.text().unwrap_or_default();
        self.expect_5xx(status, &format!("{what} ({body})"));
        assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
        assert_eq!(json["errors"][0]["code"], "UNKNOWN", "{what}: {body}");
        assert!(json["errors"][0]["message"].is_string(), "{what}: {body}");
        let port = self.proxy.endpoint().rsplit(':').next().unwrap();
        assert!(
            !body.contains(port) && !body.contains("bucket"),
            "{what}: the answer stays generic: {body}"
        );
    }

    /// A 5xx, the answer to anything that needs the store while it is down.
    pub fn expect_5xx(&self, status: u16, what: &str) {
        assert!(
            (500..600).contains(&status),
            "{what} with the store {:?}: expected a 5xx, got {status}",
            self.proxy.fault()
        );
    }

    pub fn assert_blob(&self, repo: &str, bytes: &[u8]) {
        let digest = sha256(bytes);
        let resp = self.send(
            self.reg
                .req(Method::GET, &format!("/v2/{repo}/blobs/{digest}")),
            "blob pull",
        );
        assert_eq!(resp.status(), 200);
        let got = resp.bytes().unwrap();
        assert!(got.len() == bytes.len() && sha256(&got) == digest);
    }

    pub fn assert_pull(&self, image: &Image) {
        let Image {
            repo,
            tag,
            manifest,
            layer,
        } = image;
        let resp = self.send(
            self.reg
                .req(Method::GET, &format!("/v2/{repo}/manifests/{tag}"))
                .header("accept", OCI_MANIFEST),
            "manifest pull",
        );
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().unwrap().as_ref(), manifest.as_slice());
        self.assert_blob(repo, layer);
    }
}
