//! In-memory caches of manifest lookups, so that the hot path of a pull (resolve a tag, read a
//! manifest) usually touches no storage. Storage stays the source of truth:
//! - manifest bytes are cached by digest: content addressed, so never stale;
//! - tag and revision links are cached for `registry.cacheSeconds`; this process's own writes
//!   and deletes update the cache at once, another replica's are seen within that time.
//!
//! Both caches are bounded by bytes, whatever the names and manifests look like.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oci_storage_core::Digest;
use oci_storage_core::bounded_cache::{BoundedCache, Footprint, Sharding, bounded_cache};

use super::ManifestLink;

/// Bytes of manifests kept: a thousand or more typical manifests (1–10 KiB each); a miss
/// costs one storage read.
const MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes of links kept: about ten thousand tags.
const LINK_BYTES: u64 = 2 * 1024 * 1024;
/// Largest manifest kept; a bigger one is read from storage each time.
const MAX_CACHED_MANIFEST: usize = 256 * 1024;

/// A tag or revision of a repository.
type LinkKey = (String, String);

impl Footprint for ManifestLink {
    fn footprint(&self) -> usize {
        self.digest.footprint() + self.media_type.len()
    }
}

/// Manifest bytes by digest and links by (repository, reference).
#[derive(Debug)]
pub(super) struct ManifestCache {
    ttl: Duration,
    bytes: BoundedCache<Digest, Bytes>,
    links: BoundedCache<LinkKey, (ManifestLink, Instant)>,
    /// Bumped by every write; a reader only caches what it read if no write happened since
    /// it started (else it might put back a link that was just replaced or deleted).
    epoch: AtomicU64,
    /// Held while changing links, so that a reader's check of the epoch and its insert
    /// cannot interleave with a write's bump and insert.
    link_writes: Mutex<()>,
}

impl ManifestCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            bytes: bounded_cache(MANIFEST_BYTES, 2048, Sharding::Sharded),
            links: bounded_cache(LINK_BYTES, 256, Sharding::Sharded),
            epoch: AtomicU64::new(0),
            link_writes: Mutex::new(()),
        }
    }

    pub fn bytes(&self, digest: &Digest) -> Option<Bytes> {
        self.bytes.get(digest)
    }

    pub fn put_bytes(&self, digest: &Digest, bytes: &Bytes) {
        if bytes.len() <= MAX_CACHED_MANIFEST && self.bytes.peek(digest).is_none() {
            self.bytes.insert(digest.clone(), bytes.clone());
        }
    }

    pub fn link(&self, repo: &str, reference: &str) -> Option<ManifestLink> {
        if self.ttl.is_zero() {
            return None;
        }
        self.links
            .get(&(repo.to_owned(), reference.to_owned()))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(link, _)| link)
    }

    /// The write epoch, to pass to [`ManifestCache::put_read_link`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn write_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.link_writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Caches a link read from storage, unless a write happened since `epoch` was taken.
    pub fn put_read_link(&self, epoch: u64, repo: &str, reference: &str, link: &ManifestLink) {
        let _writes = self.write_lock();
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.insert_link(repo, reference, link);
        }
    }

    /// Caches a link this process just wrote.
    pub fn put_link(&self, repo: &str, reference: &str, link: &ManifestLink) {
        let _writes = self.write_lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.insert_link(repo, reference, link);
    }

    fn insert_link(&self, repo: &str, reference: &str, link: &ManifestLink) {
        if !self.ttl.is_zero() {
            self.links.insert(
                (repo.to_owned(), reference.to_owned()),
                (link.clone(), Instant::now()),
            );
        }
    }

    /// Forgets one reference of a repository.
    pub fn forget_link(&self, repo: &str, reference: &str) {
        let _writes = self.write_lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.links.remove(&(repo.to_owned(), reference.to_owned()));
    }

    /// Forgets every reference of a repository that points at `digest`.
    pub fn forget_digest(&self, repo: &str, digest: &Digest) {
        let _writes = self.write_lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.links
            .retain(|(r, _), (link, _)| !(r == repo && link.digest == *digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: u8) -> ManifestLink {
        ManifestLink {
            digest: format!("sha256:{}", hex::encode([n; 32])).parse().unwrap(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 10,
        }
    }

    #[test]
    fn manifest_bytes_stay_within_the_budget() {
        let cache = ManifestCache::new(Duration::from_secs(60));
        let manifest = Bytes::from(vec![b'x'; 200 * 1024]);
        for n in 0..=255u8 {
            let digest = link(n).digest;
            cache.put_bytes(&digest, &manifest);
        }
        assert!(
            cache.bytes.weight() <= MANIFEST_BYTES,
            "{}",
            cache.bytes.weight()
        );
        assert!(
            cache.bytes.len() > 8,
            "it still holds many: {}",
            cache.bytes.len()
        );
        let too_big = Bytes::from(vec![b'x'; MAX_CACHED_MANIFEST + 1]);
        cache.put_bytes(&link(1).digest, &too_big);
        assert_ne!(
            cache.bytes(&link(1).digest).map(|b| b.len()),
            Some(too_big.len())
        );
    }

    #[test]
    fn links_stay_within_the_budget_whatever_the_names() {
        let cache = ManifestCache::new(Duration::from_secs(60));
        let long = "n".repeat(4000);
        for i in 0..5000 {
            cache.put_link(&format!("{long}/{i}"), &long, &link(1));
        }
        assert!(
            cache.links.weight() <= LINK_BYTES,
            "{}",
            cache.links.weight()
        );
    }

    #[test]
    fn a_read_started_before_a_write_is_not_cached() {
        let cache = ManifestCache::new(Duration::from_secs(60));
        let epoch = cache.epoch();
        cache.put_link("repo", "latest", &link(2));
        cache.put_read_link(epoch, "repo", "latest", &link(1));
        assert_eq!(cache.link("repo", "latest"), Some(link(2)));

        cache.forget_digest("repo", &link(2).digest);
        assert_eq!(cache.link("repo", "latest"), None);
        let epoch = cache.epoch();
        cache.put_read_link(epoch, "repo", "latest", &link(1));
        assert_eq!(cache.link("repo", "latest"), Some(link(1)));
    }
}
