//! Blob misses: one upstream download per digest, streamed to the client while it is written
//! to the cache through the registry's verified write (digest and size checked before the
//! cached copy is visible).

use std::sync::Arc;

use futures_util::StreamExt;
use oci_storage_core::digest::{Expectation, hashing_stream};
use oci_storage_core::{ByteStream, Digest, GetResult, PutMode};
use tokio::sync::mpsc;

use super::evict::{cache_key, guarded};
use super::follow::Download;
use super::{Claim, Proxy, Stats, Target, upstream_error};
use crate::registry::RegistryError;

/// A blob as the proxy answers it.
pub enum BlobAnswer {
    /// From the cache.
    Cached(GetResult),
    /// Streaming from upstream while it is cached.
    Streaming { size: Option<u64>, body: ByteStream },
}

impl std::fmt::Debug for BlobAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cached(read) => f.debug_tuple("Cached").field(read).finish(),
            Self::Streaming { size, .. } => f
                .debug_struct("Streaming")
                .field("size", size)
                .finish_non_exhaustive(),
        }
    }
}

/// A receiver as a byte stream.
fn channel_stream(rx: mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>) -> ByteStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// `<registry>/<repository>`, what pins match.
fn origin(target: &Target) -> String {
    format!("{}/{}", target.registry, target.upstream_repo)
}

fn copy_error(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

impl Proxy {
    /// A blob through the cache. With `head`, a miss is fetched completely before answering.
    pub async fn blob(
        self: &Arc<Self>,
        target: &Target,
        digest: &Digest,
        head: bool,
    ) -> Result<BlobAnswer, RegistryError> {
        let stats = self.health.stats(&target.registry);
        let storage = Arc::clone(self.registry.storage());
        self.blobs.load(storage.as_ref()).await;
        for _ in 0..3 {
            if let Ok(cached) = storage.get(&cache_key(digest), None).await {
                Stats::add(&stats.blob_hits, 1);
                if !head {
                    Stats::add(&stats.bytes_from_cache, cached.meta.size);
                }
                let guard = self
                    .blobs
                    .reading(digest, cached.meta.size, &origin(target));
                return Ok(BlobAnswer::Cached(
                    cached.map_body(|body| guarded(body, guard)),
                ));
            }
            let download = match self.claim(digest) {
                Claim::Fetch(download) => download,
                Claim::Follow(download) => {
                    Stats::add(&stats.coalesced_waiters, 1);
                    if head {
                        self.wait_until_fetched(digest).await;
                        continue;
                    }
                    match download.follow().await {
                        Some((size, body)) => return Ok(BlobAnswer::Streaming { size, body }),
                        None => continue, // it failed early: try the cache, or fetch anew
                    }
                }
            };
            Stats::add(&stats.blob_misses, 1);
            let streaming = self.start_fetch(target, digest, download).await?;
            if !head {
                return Ok(streaming);
            }
            if let BlobAnswer::Streaming { mut body, .. } = streaming {
                while let Some(chunk) = body.next().await {
                    chunk.map_err(|e| RegistryError::internal("fetching a blob", e))?;
                }
            }
            // Let the cache write finish, then answer from it.
            self.wait_until_fetched(digest).await;
        }
        match storage.get(&cache_key(digest), None).await {
            Ok(cached) => Ok(BlobAnswer::Cached(cached)),
            Err(_) => Err(RegistryError::new(
                crate::registry::ErrorCode::BlobUnknown,
                "blob could not be fetched from upstream",
            )),
        }
    }

    /// Starts the one download of a missing blob: a task reads upstream, verifies, feeds the
    /// cache write and the client. The client leaving does not stop the cache fill.
    async fn start_fetch(
        self: &Arc<Self>,
        target: &Target,
        digest: &Digest,
        download: Arc<Download>,
    ) -> Result<BlobAnswer, RegistryError> {
        // At most `maxConcurrentDownloads` at once; held by the download task until it ends.
        let permit = match Arc::clone(&self.downloads).acquire_owned().await {
            Ok(permit) => permit,
            Err(e) => {
                self.fetch_done(digest, &download, false);
                return Err(RegistryError::internal("waiting for a download slot", e));
            }
        };
        let upstream = self.upstream(target);
        let fetch = upstream.get_blob(&target.upstream_repo, digest, None);
        let blob = match self.call(target, &digest.to_string(), fetch).await {
            Ok(blob) => blob,
            Err(e) => {
                self.fetch_done(digest, &download, false);
                return Err(upstream_error(e, "blob"));
            }
        };
        let size = blob.size;
        let mut spool = match download.open_spool(size).await {
            Ok(spool) => spool,
            Err(e) => {
                self.fetch_done(digest, &download, false);
                return Err(RegistryError::internal("opening a download spool", e));
            }
        };
        let (verified, _) = hashing_stream(
            blob.body,
            digest.algorithm().hasher(),
            0,
            Expectation {
                digest: Some(digest.clone()),
                size,
                max_size: None,
            },
        );
        let (client_tx, client_rx) = mpsc::channel(8);
        let (store_tx, store_rx) = mpsc::channel(8);
        let proxy = Arc::clone(self);
        let stats = self.health.stats(&target.registry);
        let local = target.local.clone();
        let digest = digest.clone();
        let source = origin(target);
        tokio::spawn(async move {
            let _permit = permit;
            let storage = Arc::clone(proxy.registry.storage());
            let store = {
                let (storage, key) = (Arc::clone(&storage), cache_key(&digest));
                tokio::spawn(async move {
                    storage
                        .put(&key, channel_stream(store_rx), PutMode::Overwrite)
                        .await
                })
            };
            // The client gets each chunk one step late: the last one is released only once the
            // digest is verified, so a wrong blob never reaches the client complete.
            let mut verified = verified;
            let mut client_open = true;
            let mut held: Option<bytes::Bytes> = None;
            loop {
                let next = verified.next().await;
                // Followers read the spool: all but the newest chunk until verified.
                if let Some(Ok(bytes)) = &next {
                    match spool.append(bytes).await {
                        Ok(before) => download.release(before),
                        Err(e) => {
                            tracing::warn!(error = %e, "download spool failed; followers will fail")
                        }
                    }
                } else if next.is_none() {
                    download.release(spool.written());
                }
                let (to_store, release) = match next {
                    Some(Ok(bytes)) => (Some(Ok(bytes.clone())), held.replace(bytes).map(Ok)),
                    Some(Err(e)) => {
                        held = None;
                        let for_client = Err(copy_error(&e));
                        (Some(Err(e)), Some(for_client))
                    }
                    None => (None, held.take().map(Ok)),
                };
                let stop = !matches!(to_store, Some(Ok(_)));
                if let Some(item) = to_store
                    && store_tx.send(item).await.is_err()
                {
                    break;
                }
                if let Some(item) = release
                    && client_open
                    && client_tx.send(item).await.is_err()
                {
                    client_open = false; // the client left; keep filling the cache
                }
                if stop {
                    break;
                }
            }
            drop(store_tx);
            drop(client_tx);
            let stored = store.await;
            let ok = matches!(stored, Ok(Ok(_)));
            match stored {
                Ok(Ok(meta)) => {
                    Stats::add(&stats.bytes_from_upstream, meta.size);
                    proxy.blobs.added(&digest, meta.size, &source);
                    tracing::info!(repository = %local, digest = %digest, "cached a blob from upstream");
                }
                Ok(Err(e)) => {
                    tracing::warn!(repository = %local, digest = %digest, error = %e, "upstream blob not cached")
                }
                Err(e) => tracing::warn!(error = %e, "blob cache task failed"),
            }
            proxy.fetch_done(&digest, &download, ok);
            drop(spool);
            let evicted = proxy
                .blobs
                .evict(storage.as_ref(), |d| proxy.is_inflight(d))
                .await;
            Stats::add(&stats.evictions, evicted);
        });
        Ok(BlobAnswer::Streaming {
            size,
            body: channel_stream(client_rx),
        })
    }
}
