//! The pull-through proxy/cache: requests for `proxy/<registry>/<repo>` (or short names, or
//! `?ns=<registry>` from containerd mirrors) are served from the local cache repository
//! `proxy/<registry>/<repo>` and filled from the configured upstream on a miss. Only
//! configured upstreams are ever contacted.
//!
//! - Tags are trusted for `proxy.cache.tagTtlSeconds`, then revalidated with a HEAD; when the
//!   upstream is unreachable or refuses (429, 5xx), the cached tag is served.
//! - Digests are immutable: a cached manifest or blob is never revalidated.
//! - A blob miss streams to the client while it is written to the cache, verified against its
//!   digest before the cached copy becomes visible (a mismatch is never cached and fails the
//!   client's transfer). Concurrent misses of one blob cause one upstream fetch: the others wait
//!   for it and read the cached copy.

mod evict;
mod fill;
mod follow;
mod health;

pub use fill::BlobAnswer;
pub use health::Stats;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_storage_core::bounded_cache::{BoundedCache, Sharding, bounded_cache};
use oci_storage_core::{Digest, Upstream, UpstreamError};
use tokio::sync::Semaphore;

use follow::Download;

use crate::registry::{
    ErrorCode, ManifestLink, Reference, Registry, RegistryError, RepoName, StoredManifest, Tag,
};

/// Where a proxied request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The upstream's configured name, e.g. `docker.io`.
    pub registry: String,
    /// The repository name upstream, e.g. `library/nginx`.
    pub upstream_repo: String,
    /// The local cache repository, `proxy/<registry>/<upstream repo>`.
    pub local: RepoName,
}

/// The manifest types the proxy asks upstreams for.
pub const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Bytes of tag confirmation times kept (tens of thousands of tags).
const VALIDATED_BYTES: u64 = 2 * 1024 * 1024;

/// The proxy.
#[derive(Debug)]
pub struct Proxy {
    upstreams: BTreeMap<String, Arc<dyn Upstream>>,
    registry: Registry,
    tag_ttl: Duration,
    /// When each cached tag was last confirmed upstream.
    validated: BoundedCache<(String, String), Instant>,
    downloads: Arc<Semaphore>,
    /// Blob fetches under way, by digest: late requests wait for them.
    inflight: Mutex<HashMap<Digest, Arc<Download>>>,
    health: health::Health,
    blobs: Arc<evict::BlobCache>,
}

fn upstream_error(e: UpstreamError, what: &str) -> RegistryError {
    match e {
        UpstreamError::NotFound => RegistryError::new(
            if what == "blob" {
                ErrorCode::BlobUnknown
            } else {
                ErrorCode::ManifestUnknown
            },
            format!("{what} unknown upstream"),
        ),
        UpstreamError::Denied => {
            RegistryError::new(ErrorCode::Denied, "the upstream registry refused access")
        }
        UpstreamError::TooManyRequests { retry_after_secs } => RegistryError::new(
            ErrorCode::TooManyRequests,
            "the upstream registry is rate limiting",
        )
        .with_retry_after(retry_after_secs.unwrap_or(30)),
        UpstreamError::Unavailable(m) | UpstreamError::Invalid(m) => {
            tracing::warn!(error = %m, "upstream failure");
            RegistryError::new(ErrorCode::Unknown, "the upstream registry is unavailable")
                .with_status(502)
        }
        other => RegistryError::new(ErrorCode::Unknown, other.to_string()).with_status(502),
    }
}

impl Proxy {
    pub fn new(
        upstreams: BTreeMap<String, Arc<dyn Upstream>>,
        registry: Registry,
        tag_ttl: Duration,
        max_downloads: usize,
        max_cache_bytes: u64,
        pins: Vec<glob::Pattern>,
    ) -> Self {
        Self {
            upstreams,
            registry,
            tag_ttl,
            validated: bounded_cache(VALIDATED_BYTES, 256, Sharding::Sharded),
            downloads: Arc::new(Semaphore::new(max_downloads.max(1))),
            inflight: Mutex::default(),
            health: health::Health::default(),
            blobs: Arc::new(evict::BlobCache::new(max_cache_bytes, pins)),
        }
    }

    /// Bytes of blobs in the cache.
    pub fn cached_bytes(&self) -> u64 {
        self.blobs.total()
    }

    /// The cache's size bound.
    pub fn max_cache_bytes(&self) -> u64 {
        self.blobs.max_bytes()
    }

    /// Statistics of each upstream, by name.
    pub fn stats(&self) -> Vec<(String, Arc<Stats>, bool)> {
        self.upstreams
            .keys()
            .map(|name| {
                (
                    name.clone(),
                    self.health.stats(name),
                    self.health.is_open(name),
                )
            })
            .collect()
    }

    /// Runs one upstream call through the circuit breaker and the 404 memory.
    async fn call<T>(
        &self,
        target: &Target,
        reference: &str,
        call: impl std::future::Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        let name = target.registry.as_str();
        if self
            .health
            .known_not_found(name, &target.upstream_repo, reference)
        {
            return Err(UpstreamError::NotFound);
        }
        if self.health.is_open(name) {
            return Err(UpstreamError::Unavailable("upstream circuit open".into()));
        }
        let result = call.await;
        match &result {
            Ok(_) => self.health.succeeded(name),
            Err(UpstreamError::NotFound) => {
                self.health.succeeded(name);
                self.health
                    .remember_not_found(name, &target.upstream_repo, reference);
            }
            Err(UpstreamError::Denied) => self.health.succeeded(name),
            Err(_) => self.health.failed(name),
        }
        result
    }

    /// Maps a request to an upstream: `proxy/<registry>/<repo>`, `proxy/<short name>` (Docker
    /// Hub, `library/` added to one-component names), or `<repo>` with `?ns=<registry>`.
    pub fn route(&self, repo: &RepoName, ns: Option<&str>) -> Option<Target> {
        let (registry, upstream_repo) = match (ns, repo.as_str().strip_prefix("proxy/")) {
            (Some(ns), _) => (ns.to_owned(), repo.as_str().to_owned()),
            (None, Some(rest)) => match rest.split_once('/') {
                Some((first, path)) if self.upstreams.contains_key(first) => {
                    (first.to_owned(), path.to_owned())
                }
                _ => ("docker.io".to_owned(), rest.to_owned()),
            },
            (None, None) => return None,
        };
        self.upstreams.get(&registry)?;
        let upstream_repo = if registry == "docker.io" && !upstream_repo.contains('/') {
            format!("library/{upstream_repo}")
        } else {
            upstream_repo
        };
        let local = RepoName::parse(&format!("proxy/{registry}/{upstream_repo}"))?;
        Some(Target {
            registry,
            upstream_repo,
            local,
        })
    }

    fn upstream(&self, target: &Target) -> &Arc<dyn Upstream> {
        &self.upstreams[&target.registry]
    }

    /// A manifest (or just its link, for HEAD) through the cache.
    pub async fn manifest(
        &self,
        target: &Target,
        reference: &Reference,
    ) -> Result<StoredManifest, RegistryError> {
        let accept: Vec<String> = ACCEPT.iter().map(|s| (*s).to_owned()).collect();
        let upstream = self.upstream(target);
        match reference {
            Reference::Digest(digest) => {
                let stats = self.health.stats(&target.registry);
                if let Ok(cached) = self.registry.get_manifest(&target.local, reference).await {
                    Stats::add(&stats.manifest_hits, 1);
                    return Ok(cached);
                }
                Stats::add(&stats.manifest_misses, 1);
                let wanted = digest.to_string();
                let fetched = self
                    .call(
                        target,
                        &wanted,
                        upstream.get_manifest(&target.upstream_repo, &wanted, &accept),
                    )
                    .await
                    .map_err(|e| upstream_error(e, "manifest"))?;
                self.store(target, fetched, None).await
            }
            Reference::Tag(tag) => {
                let stats = self.health.stats(&target.registry);
                let cached = self
                    .registry
                    .resolve_manifest(&target.local, reference)
                    .await
                    .ok();
                let key = (target.local.to_string(), tag.to_string());
                let fresh = self
                    .validated
                    .get(&key)
                    .is_some_and(|at| at.elapsed() < self.tag_ttl);
                if let (Some(_), true) = (&cached, fresh) {
                    Stats::add(&stats.manifest_hits, 1);
                    return self.registry.get_manifest(&target.local, reference).await;
                }
                // Revalidate with a HEAD (not counted as a pull by Docker Hub).
                let head = upstream.head_manifest(&target.upstream_repo, tag.as_str(), &accept);
                let current = match self.call(target, tag.as_str(), head).await {
                    Ok(current) => current,
                    Err(e) => {
                        return match (cached, e) {
                            (_, UpstreamError::NotFound) => {
                                Err(upstream_error(UpstreamError::NotFound, "manifest"))
                            }
                            (Some(_), e) => {
                                Stats::add(&stats.stale_served, 1);
                                tracing::info!(error = %e, repository = %target.local, tag = %tag, "upstream unavailable: serving the cached tag");
                                self.registry.get_manifest(&target.local, reference).await
                            }
                            (None, e) => Err(upstream_error(e, "manifest")),
                        };
                    }
                };
                self.validated.insert(key, Instant::now());
                let digest_ref = Reference::Digest(current.digest.clone());
                if let Ok(have) = self.registry.get_manifest(&target.local, &digest_ref).await {
                    Stats::add(&stats.manifest_hits, 1);
                    if cached
                        .as_ref()
                        .is_none_or(|c: &ManifestLink| c.digest != current.digest)
                    {
                        self.registry
                            .cache_manifest(
                                &target.local,
                                have.bytes.clone(),
                                &current.digest,
                                &have.link.media_type,
                                Some(tag),
                            )
                            .await?;
                    }
                    return Ok(have);
                }
                Stats::add(&stats.manifest_misses, 1);
                let wanted = current.digest.to_string();
                let fetched = self
                    .call(
                        target,
                        &wanted,
                        upstream.get_manifest(&target.upstream_repo, &wanted, &accept),
                    )
                    .await
                    .map_err(|e| upstream_error(e, "manifest"))?;
                self.store(target, fetched, Some(tag)).await
            }
        }
    }

    /// The referrers of a manifest, from upstream (briefly unreachable: none).
    pub async fn referrers(
        &self,
        target: &Target,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<bytes::Bytes, RegistryError> {
        let upstream = self.upstream(target);
        let key = format!("referrers:{digest}:{}", artifact_type.unwrap_or(""));
        self.call(
            target,
            &key,
            upstream.referrers(&target.upstream_repo, digest, artifact_type),
        )
        .await
        .map_err(|e| upstream_error(e, "manifest"))
    }

    async fn store(
        &self,
        target: &Target,
        fetched: oci_storage_core::UpstreamManifest,
        tag: Option<&Tag>,
    ) -> Result<StoredManifest, RegistryError> {
        let link = self
            .registry
            .cache_manifest(
                &target.local,
                fetched.bytes.clone(),
                &fetched.digest,
                &fetched.media_type,
                tag,
            )
            .await?;
        Ok(StoredManifest {
            link,
            bytes: fetched.bytes,
        })
    }

    /// Registers this request as the downloader of a blob, or answers the download under way.
    fn claim(&self, digest: &Digest) -> Claim {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        match inflight.get(digest) {
            Some(download) => Claim::Follow(Arc::clone(download)),
            None => {
                let download = Arc::new(Download::new());
                inflight.insert(digest.clone(), Arc::clone(&download));
                Claim::Fetch(download)
            }
        }
    }

    /// Waits until no download of this digest is under way.
    async fn wait_until_fetched(&self, digest: &Digest) {
        let notified = {
            let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(digest) {
                // Created under the lock: a notification sent after it is unlocked is not missed.
                Some(download) => Arc::clone(download),
                None => return,
            }
        };
        let waiting = notified.notify.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();
        if !self.is_inflight(digest) {
            return;
        }
        waiting.await;
    }

    /// Whether a download of this digest is under way.
    fn is_inflight(&self, digest: &Digest) -> bool {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(digest)
    }

    /// Ends a download: followers see its outcome; waiters go and read the cache.
    fn fetch_done(&self, digest: &Digest, download: &Download, ok: bool) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        download.finish(ok);
        download.notify.notify_waiters();
    }
}

/// What a request for a missing blob does.
enum Claim {
    /// Download it (and share the download).
    Fetch(Arc<Download>),
    /// Follow the download under way.
    Follow(Arc<Download>),
}
