//! The OCI Distribution API, black box: a raw HTTP client against the real binary, checking
//! status codes, headers, exact bodies and OCI error codes (spec end-1 … end-14, multi-tag
//! push, `_catalog`). Shared helpers live here; each file covers one part of the API.

mod auth;
mod blobs;
mod errors;
mod listings;
mod manifests;
mod referrers;
mod uploads;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use oci_storage_tests::{PASSWORD, Server, USER, XorShift, sha256};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// A server plus an HTTP client that sends the test user's credentials.
pub struct Reg {
    pub server: Server,
    client: Client,
}

impl Reg {
    /// A server with the default test configuration.
    pub fn start() -> Self {
        Self::with(super::server())
    }

    pub fn with(server: Server) -> Self {
        let client = server.client();
        Self::with_client(server, client)
    }

    /// With a client of the test's own (its timeouts, say).
    pub fn with_client(server: Server, client: Client) -> Self {
        Self { server, client }
    }

    /// `path` (`/v2/…`) or a Location header value, as an absolute URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            self.server.at(path)
        }
    }

    /// A request without credentials.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with the test user's credentials.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).basic_auth(USER, Some(PASSWORD))
    }

    pub fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().unwrap()
    }

    pub fn head(&self, path: &str) -> Response {
        self.req(Method::HEAD, path).send().unwrap()
    }

    pub fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().unwrap()
    }

    /// A monolithic blob upload (`POST ?digest=`), for the caller to give a body.
    pub fn blob_post(&self, repo: &str, digest: &str) -> RequestBuilder {
        self.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
    }

    /// Pushes a blob monolithically (`POST ?digest=`); answers its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let resp = self
            .blob_post(repo, &digest)
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "pushing blob to {repo}: {}", text(resp));
        digest
    }

    /// Opens an upload session; answers its Location.
    pub fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", text(resp));
        header(&resp, "location")
    }

    /// PUTs a manifest with the given Content-Type.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", content_type)
            .body(bytes.to_vec())
            .send()
            .unwrap()
    }

    /// PUTs a manifest that must be accepted; answers its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> String {
        let resp = self.put_manifest(repo, reference, content_type, bytes);
        assert_eq!(
            resp.status(),
            201,
            "manifest {repo}:{reference}: {}",
            text(resp)
        );
        let digest = header(&resp, "docker-content-digest");
        assert_eq!(
            header(&resp, "location"),
            format!("/v2/{repo}/manifests/{digest}")
        );
        digest
    }

    /// Pushes the empty config `{}` and one layer, then an OCI image manifest over them by
    /// `reference`; answers (manifest bytes, manifest digest).
    pub fn push_image(&self, repo: &str, reference: &str, layer: &[u8]) -> (Vec<u8>, String) {
        let config = self.push_blob(repo, b"{}");
        assert_eq!(config, EMPTY_DIGEST);
        let layer_digest = self.push_blob(repo, layer);
        let bytes = image_manifest(
            OCI_CONFIG,
            &config,
            2,
            &[(OCI_LAYER, &layer_digest, layer.len())],
        );
        let digest = self.push_manifest(repo, reference, OCI_MANIFEST, &bytes);
        assert_eq!(digest, sha256(&bytes));
        (bytes, digest)
    }

    /// Sends a request exactly as written (no URL normalisation), with the test user's
    /// credentials; answers (status, head, body).
    pub fn raw(&self, method: &str, target: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.server.host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let auth = basic_auth_value(USER, PASSWORD);
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.server.host
        )
        .unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        let out = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {out:?}"));
        (status, head.to_owned(), body.to_owned())
    }
}

/// `Basic base64(user:password)`.
pub fn basic_auth_value(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A header's value as a string; fails the test when it is missing.
pub fn header(resp: &Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", resp.headers()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A header's value, if present.
pub fn maybe_header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

pub fn text(resp: Response) -> String {
    let status = resp.status();
    format!("{status}: {}", resp.text().unwrap_or_default())
}

pub fn json_body(resp: Response) -> Value {
    let bytes = resp.bytes().unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// Checks an OCI error answer: the status, a JSON content type, and `errors[0].code`.
/// Answers the error body.
#[track_caller]
pub fn assert_error(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(
        resp.status(),
        status,
        "expected {status} {code}, got {}",
        text(resp)
    );
    assert!(
        header(&resp, "content-type").starts_with("application/json"),
        "error content type"
    );
    let body = json_body(resp);
    let errors = body["errors"].as_array().expect("errors array");
    assert!(!errors.is_empty(), "{body}");
    assert_eq!(errors[0]["code"], code, "{body}");
    assert!(errors[0]["message"].is_string(), "{body}");
    body
}

/// The error code of a raw answer body.
pub fn raw_error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// An OCI image manifest (compact JSON).
pub fn image_manifest(
    config_type: &str,
    config_digest: &str,
    config_size: usize,
    layers: &[(&str, &str, usize)],
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": config_type, "digest": config_digest, "size": config_size },
        "layers": layers.iter().map(|(t, d, s)| json!({
            "mediaType": t, "digest": d, "size": s
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// An artifact manifest over the empty config, optionally with a subject, an artifactType
/// and annotations (the blob `{}` must be in the repository).
pub fn artifact_manifest(
    artifact_type: Option<&str>,
    subject: Option<(&str, usize)>,
    annotations: Option<Value>,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [{ "mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2 }],
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = json!(t);
    }
    if let Some((digest, size)) = subject {
        m["subject"] = json!({ "mediaType": OCI_MANIFEST, "digest": digest, "size": size });
    }
    if let Some(a) = annotations {
        m["annotations"] = a;
    }
    serde_json::to_vec(&m).unwrap()
}

/// `len` bytes of deterministic, incompressible-looking content.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    XorShift::new(seed).bytes(len)
}

/// Adds `query` (`k=v`) to a path or Location that may already carry a query string.
pub fn with_query(location: &str, query: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{query}")
}

/// The id at the end of an upload Location.
pub fn upload_id(location: &str) -> String {
    let path = location.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}
