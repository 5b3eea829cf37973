//! The `registry` upstream: a remote OCI registry (Docker Hub, ghcr.io, quay.io, …) read by the
//! pull-through proxy. It does the Docker token dance (401 `Bearer` challenge → token from the
//! realm, anonymous or with credentials → retry; tokens reused until they expire), answers Basic
//! challenges, follows redirects (reqwest drops `Authorization` when a redirect changes host),
//! and only ever talks to its configured URL and the hosts that URL redirects to.

mod challenge;

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use oci_storage_core::bounded_cache::{BoundedCache, Sharding, bounded_cache};
use oci_storage_core::media_type::is_media_type;
use oci_storage_core::upstream::MAX_MANIFEST_BYTES;
use oci_storage_core::{
    Digest, DigestAlgorithm, PluginContext, PluginError, Secret, Upstream, UpstreamBlob,
    UpstreamError, UpstreamManifest,
};
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;

use challenge::{Challenge, parse_challenges};

/// Configuration of one upstream (`proxy.registries[]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamConfig {
    /// The name clients use, e.g. `docker.io`.
    pub name: String,
    /// The registry's base URL, e.g. `https://registry-1.docker.io`.
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Seconds to wait for a connection before calling the upstream down.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
}

fn default_connect_timeout() -> u64 {
    3
}

/// The plugin factory, registered as upstream type `registry`.
pub async fn factory(
    _ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn Upstream>, PluginError> {
    let config: UpstreamConfig = PluginError::parse_config("proxy.registries[]", config)?;
    RegistryUpstream::new(config)
        .map(|u| Arc::new(u) as Arc<dyn Upstream>)
        .map_err(|e| PluginError::Init(e.to_string()))
}

/// Bytes of bearer tokens kept (a Docker Hub token is about 1.5 KiB).
const TOKEN_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// A remote registry.
pub struct RegistryUpstream {
    config: UpstreamConfig,
    base: String,
    http: reqwest::Client,
    /// Bearer tokens by scope, with their expiry. Scopes name repositories clients ask for,
    /// so the cache is bounded by bytes.
    tokens: BoundedCache<String, (String, Instant)>,
}

impl std::fmt::Debug for RegistryUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryUpstream")
            .field("name", &self.config.name)
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Time allowed for a manifest or token answer.
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn unavailable(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable(e.to_string())
}

impl RegistryUpstream {
    pub fn new(config: UpstreamConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.connect_timeout_seconds.max(1)))
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent(concat!("oci-storage/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base: config.url.trim_end_matches('/').to_owned(),
            config,
            http,
            tokens: bounded_cache(TOKEN_CACHE_BYTES, 2048, Sharding::Sharded),
        })
    }

    fn scope(repository: &str) -> String {
        format!("repository:{repository}:pull")
    }

    /// Sends a request, doing the authentication dance on a 401 once.
    /// `timeout`: for the whole answer of small requests (manifests), so a hanging upstream
    /// is given up quickly and the cache serves; blob downloads have none (they may be huge).
    async fn send(
        &self,
        method: Method,
        path: &str,
        repository: &str,
        headers: &[(header::HeaderName, String)],
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{path}", self.base);
        let scope = Self::scope(repository);
        let build = |auth: Option<String>| {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(timeout) = timeout {
                req = req.timeout(timeout);
            }
            for (name, value) in headers {
                req = req.header(name, value);
            }
            if let Some(auth) = auth {
                req = req.header(header::AUTHORIZATION, auth);
            }
            req
        };
        let cached = self.cached_token(&scope).map(|t| format!("Bearer {t}"));
        let resp = build(cached.clone()).send().await.map_err(unavailable)?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenges = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect::<Vec<_>>();
        let auth = match challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        {
            Some(bearer) => Some(format!(
                "Bearer {}",
                self.fetch_token(bearer, &scope).await?
            )),
            None => challenges
                .iter()
                .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
                .then(|| self.basic())
                .flatten(),
        };
        match auth {
            Some(auth) => build(Some(auth)).send().await.map_err(unavailable),
            None => Err(UpstreamError::Denied),
        }
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine as _;
        let user = self.config.username.as_ref()?;
        let password = self
            .config
            .password
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        let pair = format!("{user}:{password}");
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    fn cached_token(&self, scope: &str) -> Option<String> {
        self.tokens
            .get(scope)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Asks the challenge's realm for a token (with credentials when configured).
    async fn fetch_token(
        &self,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String, UpstreamError> {
        let realm = challenge.param("realm").ok_or(UpstreamError::Denied)?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(service) = challenge.param("service") {
            query.push(("service", service.to_owned()));
        }
        query.push((
            "scope",
            challenge.param("scope").unwrap_or(scope).to_owned(),
        ));
        let mut req = self
            .http
            .get(realm)
            .query(&query)
            .timeout(SMALL_REQUEST_TIMEOUT);
        if let Some(basic) = self.basic() {
            req = req.header(header::AUTHORIZATION, basic);
        }
        let resp = req.send().await.map_err(unavailable)?;
        if !resp.status().is_success() {
            return Err(match resp.status() {
                StatusCode::TOO_MANY_REQUESTS => UpstreamError::TooManyRequests {
                    retry_after_secs: None,
                },
                s if s.is_server_error() => {
                    UpstreamError::Unavailable(format!("token realm answered {s}"))
                }
                _ => UpstreamError::Denied,
            });
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| UpstreamError::Invalid("token answer without a token".into()))?;
        // Reuse until shortly before expiry (60 s when the realm does not say).
        let lifetime =
            Duration::from_secs(answer.expires_in.unwrap_or(60).saturating_sub(5).max(1));
        self.tokens
            .insert(scope.to_owned(), (token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn manifest(
        &self,
        method: Method,
        repository: &str,
        reference: &str,
        accept: &[String],
    ) -> Result<UpstreamManifest, UpstreamError> {
        let accept = accept.join(", ");
        let resp = self
            .send(
                method.clone(),
                &format!("/v2/{repository}/manifests/{reference}"),
                repository,
                &[(header::ACCEPT, accept)],
                Some(SMALL_REQUEST_TIMEOUT),
            )
            .await?;
        check_status(&resp)?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !is_media_type(&media_type) {
            return Err(UpstreamError::Invalid(
                "manifest Content-Type is not a media type".into(),
            ));
        }
        let declared: Option<Digest> = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let length = resp.content_length();
        if method == Method::HEAD {
            let digest = declared.or_else(|| reference.parse().ok()).ok_or_else(|| {
                UpstreamError::Invalid("HEAD without Docker-Content-Digest".into())
            })?;
            return Ok(UpstreamManifest {
                digest,
                media_type,
                bytes: Bytes::new(),
                size: length.unwrap_or(0),
            });
        }
        let bytes = bounded_body(resp, "manifest").await?;
        // The digest of the bytes is the truth; a digest reference or header must agree.
        let algorithm = reference
            .parse::<Digest>()
            .map(|d| d.algorithm())
            .unwrap_or(DigestAlgorithm::Sha256);
        let digest = algorithm.digest(&bytes);
        if let Ok(wanted) = reference.parse::<Digest>()
            && wanted != digest
        {
            return Err(UpstreamError::Invalid(format!(
                "manifest {wanted} has digest {digest}"
            )));
        }
        if let Some(declared) = declared
            && declared.algorithm() == digest.algorithm()
            && declared != digest
        {
            return Err(UpstreamError::Invalid(format!(
                "upstream declared {declared} for a manifest whose digest is {digest}"
            )));
        }
        Ok(UpstreamManifest {
            digest,
            media_type,
            size: bytes.len() as u64,
            bytes,
        })
    }
}

/// A manifest-sized answer's body, read up to [`MAX_MANIFEST_BYTES`].
async fn bounded_body(resp: reqwest::Response, what: &str) -> Result<Bytes, UpstreamError> {
    let too_large = || UpstreamError::Invalid(format!("{what} over {MAX_MANIFEST_BYTES} bytes"));
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unavailable)?;
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn check_status(resp: &reqwest::Response) -> Result<(), UpstreamError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    Err(match status {
        StatusCode::NOT_FOUND => UpstreamError::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::Denied,
        StatusCode::TOO_MANY_REQUESTS => UpstreamError::TooManyRequests {
            retry_after_secs: resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        },
        s => UpstreamError::Unavailable(format!("upstream answered {s}")),
    })
}

#[async_trait]
impl Upstream for RegistryUpstream {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[String],
    ) -> Result<UpstreamManifest, UpstreamError> {
        self.manifest(Method::HEAD, repository, reference, accept)
            .await
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[String],
    ) -> Result<UpstreamManifest, UpstreamError> {
        self.manifest(Method::GET, repository, reference, accept)
            .await
    }

    async fn referrers(
        &self,
        repository: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Bytes, UpstreamError> {
        let mut path = format!("/v2/{repository}/referrers/{digest}");
        if let Some(t) = artifact_type {
            path.push_str("?artifactType=");
            path.push_str(&t.replace('+', "%2B"));
        }
        let resp = self
            .send(
                Method::GET,
                &path,
                repository,
                &[],
                Some(SMALL_REQUEST_TIMEOUT),
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            // No referrers API upstream: nothing refers to it as far as we can tell.
            return Ok(Bytes::from_static(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
            ));
        }
        check_status(&resp)?;
        let bytes = bounded_body(resp, "referrers answer").await?;
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| UpstreamError::Invalid(format!("referrers answer is not JSON: {e}")))?;
        Ok(bytes)
    }

    async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<UpstreamBlob, UpstreamError> {
        let mut headers = Vec::new();
        if let Some(r) = &range {
            headers.push((
                header::RANGE,
                format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
            ));
        }
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{repository}/blobs/{digest}"),
                repository,
                &headers,
                None,
            )
            .await?;
        check_status(&resp)?;
        let size = resp.content_length();
        let body = resp
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        Ok(UpstreamBlob {
            size,
            body: Box::pin(body),
        })
    }
}
