//! In-memory caches of manifest lookups, so that the hot path of a pull (resolve a tag, read a
//! manifest) usually touches no storage. Storage stays the source of truth:
//! - manifest bytes are cached by digest: content addressed, so never stale;
//! - tag and revision links are cached for `registry.cacheSeconds`; this process's own writes
//!   and deletes update the cache at once, another replica's are seen within that time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oci_storage_core::Digest;

use super::ManifestLink;

/// Largest manifest kept in the bytes cache.
const MAX_CACHED_MANIFEST: usize = 1024 * 1024;
/// Total bytes of manifests kept.
const BYTES_BUDGET: usize = 64 * 1024 * 1024;
/// Most cached links.
const MAX_LINKS: usize = 100_000;

#[derive(Debug, Default)]
struct ByteCache {
    map: HashMap<Digest, Bytes>,
    order: VecDeque<Digest>,
    total: usize,
}

/// Manifest bytes by digest and links by (repository, reference).
#[derive(Debug)]
pub(super) struct ManifestCache {
    ttl: Duration,
    bytes: Mutex<ByteCache>,
    links: Mutex<HashMap<(String, String), (ManifestLink, Instant)>>,
    /// Bumped by every write; a reader only caches what it read if no write happened since
    /// it started (else it might put back a link that was just replaced or deleted).
    epoch: AtomicU64,
}

impl ManifestCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            bytes: Mutex::default(),
            links: Mutex::default(),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn bytes(&self, digest: &Digest) -> Option<Bytes> {
        let cache = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        cache.map.get(digest).cloned()
    }

    pub fn put_bytes(&self, digest: &Digest, bytes: &Bytes) {
        if bytes.len() > MAX_CACHED_MANIFEST {
            return;
        }
        let mut cache = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if cache.map.contains_key(digest) {
            return;
        }
        while cache.total + bytes.len() > BYTES_BUDGET {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(evicted) = cache.map.remove(&oldest) {
                cache.total -= evicted.len();
            }
        }
        cache.total += bytes.len();
        cache.order.push_back(digest.clone());
        cache.map.insert(digest.clone(), bytes.clone());
    }

    pub fn link(&self, repo: &str, reference: &str) -> Option<ManifestLink> {
        if self.ttl.is_zero() {
            return None;
        }
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links
            .get(&(repo.to_owned(), reference.to_owned()))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(link, _)| link.clone())
    }

    /// The write epoch, to pass to [`ManifestCache::put_read_link`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches a link read from storage, unless a write happened since `epoch` was taken.
    pub fn put_read_link(&self, epoch: u64, repo: &str, reference: &str, link: &ManifestLink) {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        drop(links);
        self.insert_link(repo, reference, link);
    }

    /// Caches a link this process just wrote.
    pub fn put_link(&self, repo: &str, reference: &str, link: &ManifestLink) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.insert_link(repo, reference, link);
    }

    fn insert_link(&self, repo: &str, reference: &str, link: &ManifestLink) {
        if self.ttl.is_zero() {
            return;
        }
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if links.len() >= MAX_LINKS {
            let ttl = self.ttl;
            links.retain(|_, (_, at)| at.elapsed() < ttl);
            if links.len() >= MAX_LINKS {
                links.clear();
            }
        }
        links.insert(
            (repo.to_owned(), reference.to_owned()),
            (link.clone(), Instant::now()),
        );
    }

    /// Forgets one reference of a repository.
    pub fn forget_link(&self, repo: &str, reference: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.remove(&(repo.to_owned(), reference.to_owned()));
    }

    /// Forgets every reference of a repository that points at `digest`.
    pub fn forget_digest(&self, repo: &str, digest: &Digest) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.retain(|(r, _), (link, _)| !(r == repo && link.digest == *digest));
    }
}
