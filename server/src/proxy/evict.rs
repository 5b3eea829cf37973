//! The proxy's blob cache and its size bound. Proxied blobs live in their own key space
//! (`proxycache/<alg>/<hex>`), apart from hosted content, so evicting them can never remove
//! something a hosted repository references. When the cache grows past `maxSizeGB` (the high
//! watermark), the least recently used blobs are removed until it is under 90 % of it (the low
//! watermark) — never one that a transfer is reading or that a pin protects.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use futures_util::Stream;
use oci_storage_core::{ByteStream, Digest, Key, Storage, StorageExt};

/// The key of a cached blob.
pub fn cache_key(digest: &Digest) -> Key {
    Key::new(format!(
        "proxycache/{}/{}",
        digest.algorithm().as_str(),
        digest.hex()
    ))
    .expect("digests make valid keys")
}

const PREFIX: &str = "proxycache/";

#[derive(Debug, Clone)]
struct Entry {
    size: u64,
    last_access: SystemTime,
    readers: usize,
    /// `<registry>/<repository>` it was first fetched for (for pins).
    origin: String,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Digest, Entry>,
    total: u64,
    loaded: bool,
}

/// Size accounting and eviction of the proxy's blob cache.
#[derive(Debug)]
pub struct BlobCache {
    max_bytes: u64,
    pins: Vec<glob::Pattern>,
    state: Mutex<State>,
}

/// Keeps a cached blob from eviction while a transfer reads it.
#[derive(Debug)]
pub struct ReadGuard {
    cache: std::sync::Arc<BlobCache>,
    digest: Digest,
}

impl BlobCache {
    pub fn new(max_bytes: u64, pins: Vec<glob::Pattern>) -> Self {
        Self {
            max_bytes,
            pins,
            state: Mutex::default(),
        }
    }

    /// Learns what is cached from storage (once it succeeds, lazily; startup does not wait).
    pub async fn load(&self, storage: &dyn Storage) {
        if self.state.lock().unwrap_or_else(|p| p.into_inner()).loaded {
            return;
        }
        let listed = match storage.list_all(PREFIX).await {
            Ok(listed) => listed,
            Err(e) => {
                // Not marked loaded: the next call tries again, rather than under-counting
                // the cache (and never evicting what it holds) until a restart.
                tracing::warn!(error = %e, "could not list the proxy cache; will retry");
                return;
            }
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.loaded {
            return;
        }
        for meta in listed {
            let Some(digest) = meta
                .key
                .as_str()
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.replacen('/', ":", 1).parse::<Digest>().ok())
            else {
                continue;
            };
            if state.entries.contains_key(&digest) {
                continue;
            }
            state.total += meta.size;
            state.entries.insert(
                digest,
                Entry {
                    size: meta.size,
                    last_access: meta.last_modified.unwrap_or(SystemTime::UNIX_EPOCH),
                    readers: 0,
                    origin: String::new(),
                },
            );
        }
        state.loaded = true;
    }

    /// Records a blob just cached.
    pub fn added(&self, digest: &Digest, size: u64, origin: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let previous = state.entries.insert(
            digest.clone(),
            Entry {
                size,
                last_access: SystemTime::now(),
                readers: 0,
                origin: origin.to_owned(),
            },
        );
        state.total = state.total - previous.map_or(0, |p| p.size) + size;
    }

    /// Marks a blob used now and protects it while the guard lives.
    pub fn reading(
        self: &std::sync::Arc<Self>,
        digest: &Digest,
        size: u64,
        origin: &str,
    ) -> ReadGuard {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.entries.contains_key(digest) {
            state.total += size;
        }
        let entry = state
            .entries
            .entry(digest.clone())
            .or_insert_with(|| Entry {
                size,
                last_access: SystemTime::now(),
                readers: 0,
                origin: origin.to_owned(),
            });
        entry.last_access = SystemTime::now();
        entry.readers += 1;
        ReadGuard {
            cache: std::sync::Arc::clone(self),
            digest: digest.clone(),
        }
    }

    /// Bytes currently cached.
    /// The configured bound (`proxy.cache.maxSizeGB`).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn total(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Removes least recently used blobs while the cache is over its bound; answers how many.
    pub async fn evict(&self, storage: &dyn Storage, busy: impl Fn(&Digest) -> bool) -> u64 {
        let victims: Vec<(Digest, u64)> = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.total <= self.max_bytes {
                return 0;
            }
            let low = self.max_bytes / 10 * 9;
            let mut candidates: Vec<(&Digest, &Entry)> = state
                .entries
                .iter()
                .filter(|(d, e)| e.readers == 0 && !busy(d) && !self.pinned(&e.origin))
                .collect();
            candidates.sort_by_key(|(_, e)| e.last_access);
            let mut total = state.total;
            let mut victims = Vec::new();
            for (digest, entry) in candidates {
                if total <= low {
                    break;
                }
                total -= entry.size;
                victims.push((digest.clone(), entry.size));
            }
            victims
        };
        let mut evicted = 0;
        for (digest, size) in victims {
            // Re-check under the lock: a reader may have started meanwhile.
            {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.entries.get(&digest).is_none_or(|e| e.readers > 0) {
                    continue;
                }
                state.entries.remove(&digest);
                state.total -= size;
            }
            match storage.delete(&cache_key(&digest)).await {
                Ok(()) => evicted += 1,
                Err(e) => {
                    tracing::warn!(error = %e, digest = %digest, "could not evict a cached blob")
                }
            }
        }
        if evicted > 0 {
            tracing::info!(evicted, "evicted blobs from the proxy cache");
        }
        evicted
    }

    fn pinned(&self, origin: &str) -> bool {
        !origin.is_empty() && self.pins.iter().any(|p| p.matches(origin))
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let mut state = self.cache.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = state.entries.get_mut(&self.digest) {
            entry.readers = entry.readers.saturating_sub(1);
            entry.last_access = SystemTime::now();
        }
    }
}

/// A body that keeps its blob protected from eviction until it is dropped.
pub fn guarded(body: ByteStream, guard: impl Send + 'static) -> ByteStream {
    struct Guarded<G> {
        body: ByteStream,
        _guard: G,
    }
    impl<G> Stream for Guarded<G>
    where
        G: Unpin,
    {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.body.as_mut().poll_next(cx)
        }
    }
    Box::pin(Guarded {
        body,
        _guard: Box::new(guard),
    })
}
