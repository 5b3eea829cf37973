//! What each repository holds and takes (kind, bytes, tags, last push), for listing, sorting
//! and plotting in the web interface. Walking every repository costs a listing and a few
//! manifest reads each, so the figures are a snapshot, retaken in the background once it is
//! older than [`MAX_AGE`] (the caller that finds it stale still gets the old one at once;
//! only the first waits). A repository changed through the web interface is measured again
//! alone, so its user sees the change at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::api::repositories::{RepositoryKind, repository_kind};
use crate::registry::{Reference, Registry, RegistryError, RepoName, Tag, TagListing};

/// How old a snapshot may be before the next reader starts a new one.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Most tags of one repository whose manifests are read (the rest are counted, not sized).
const SIZED_TAGS: usize = 100;

/// Most repositories one snapshot walks.
const SCAN_LIMIT: usize = 20_000;

/// One repository's figures.
#[derive(Debug, Clone, Default)]
pub struct RepositoryUsage {
    /// What its newest tag holds (a chart repository shows as an artifact: charts are known
    /// from the chart index).
    pub kind: RepositoryKind,
    /// Bytes of the tagged manifests and everything they reference, each digest once.
    pub size: u64,
    pub tags: usize,
    pub last_push: Option<SystemTime>,
    /// (digest key, size) of every manifest and blob counted, so totals over several
    /// repositories count shared layers once.
    content: Vec<(u64, u64)>,
}

/// Every repository's figures at one moment.
#[derive(Debug, Default, Clone)]
pub struct UsageSnapshot {
    pub repositories: HashMap<String, RepositoryUsage>,
}

impl UsageSnapshot {
    /// Bytes held by these repositories together, shared content counted once.
    pub fn total<'a>(&self, repositories: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut seen = HashSet::new();
        repositories
            .into_iter()
            .filter_map(|r| self.repositories.get(r))
            .flat_map(|u| u.content.iter())
            .filter(|(key, _)| seen.insert(*key))
            .map(|(_, size)| size)
            .sum()
    }
}

/// The current snapshot, and at most one refresh in flight.
#[derive(Debug, Default)]
pub struct Usage {
    /// When the snapshot was started, the generation it belongs to, and the figures.
    current: Mutex<Option<(Instant, u64, Arc<UsageSnapshot>)>>,
    /// Bumped by [`Usage::invalidate`]: a snapshot of an older generation is not served.
    generation: AtomicU64,
    /// Repositories changed since the snapshot: measured again (alone) by the next reader.
    changed: Mutex<HashSet<String>>,
    refreshing: tokio::sync::Mutex<()>,
    patching: tokio::sync::Mutex<()>,
    /// A background refresh is running (at most one, however many readers find it stale).
    in_background: AtomicBool,
}

impl Usage {
    /// The current figures: taken now if there are none (or they were invalidated),
    /// otherwise at once, with a refresh started in the background when they are older than
    /// [`MAX_AGE`].
    pub async fn snapshot(self: &Arc<Self>, registry: &Registry) -> Arc<UsageSnapshot> {
        let current = self.current.lock().expect("usage lock").clone();
        match current {
            Some((taken, generation, snapshot))
                if generation == self.generation.load(Ordering::SeqCst) =>
            {
                if taken.elapsed() > MAX_AGE && !self.in_background.swap(true, Ordering::SeqCst) {
                    let usage = Arc::clone(self);
                    let registry = registry.clone();
                    tokio::spawn(async move {
                        usage.refresh(&registry).await;
                        usage.in_background.store(false, Ordering::SeqCst);
                    });
                }
                snapshot
            }
            Some(_) => self.patch(registry).await,
            None => self.refresh(registry).await,
        }
    }

    /// The snapshot with the changed repositories measured again (one listing each, not a
    /// walk of every repository). One patch at a time, each on the latest snapshot.
    async fn patch(&self, registry: &Registry) -> Arc<UsageSnapshot> {
        let _one_at_a_time = self.patching.lock().await;
        // Read before taking the changes: a change made meanwhile bumps it again, so what is
        // stored here is not mistaken for current.
        let generation = self.generation.load(Ordering::SeqCst);
        let current = self.current.lock().expect("usage lock").clone();
        let Some((taken, stored_generation, snapshot)) = current else {
            return self.refresh(registry).await;
        };
        if stored_generation == generation {
            // Patched by the reader before this one.
            return snapshot;
        }
        let changed = std::mem::take(&mut *self.changed.lock().expect("usage lock"));
        let mut patched = (*snapshot).clone();
        for name in changed {
            let measured = match RepoName::parse(&name) {
                Some(repo) => measure(registry, &repo).await.ok(),
                None => None,
            };
            match measured {
                Some(usage) => patched.repositories.insert(name, usage),
                None => patched.repositories.remove(&name),
            };
        }
        let patched = Arc::new(patched);
        let mut current = self.current.lock().expect("usage lock");
        // A full refresh may have stored a newer snapshot meanwhile; keep that one.
        if current.as_ref().is_some_and(|(t, _, _)| *t <= taken) {
            *current = Some((taken, generation, Arc::clone(&patched)));
        }
        patched
    }

    /// Marks a repository changed (through the web interface, whose user expects to see the
    /// change): the next reader measures it again before answering. A full snapshot being
    /// taken meanwhile is not kept: it may have missed the change.
    pub fn invalidate(&self, repository: &str) {
        self.changed
            .lock()
            .expect("usage lock")
            .insert(repository.to_owned());
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    async fn refresh(&self, registry: &Registry) -> Arc<UsageSnapshot> {
        let _only_one = self.refreshing.lock().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let generation = self.generation.load(Ordering::SeqCst);
            // Someone else may have refreshed while this one waited.
            if let Some((taken, g, snapshot)) = self.current.lock().expect("usage lock").as_ref()
                && *g == generation
                && taken.elapsed() <= MAX_AGE
            {
                return Arc::clone(snapshot);
            }
            let started = Instant::now();
            let snapshot = Arc::new(take_snapshot(registry).await);
            tracing::debug!(
                repositories = snapshot.repositories.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "repository usage measured"
            );
            if self.generation.load(Ordering::SeqCst) == generation {
                *self.current.lock().expect("usage lock") =
                    Some((started, generation, Arc::clone(&snapshot)));
                return snapshot;
            }
            // Invalidated while measuring: measure again (changes keep coming: serve this one
            // unkept).
            if attempts == 3 {
                return snapshot;
            }
        }
    }
}

async fn take_snapshot(registry: &Registry) -> UsageSnapshot {
    let mut repositories = HashMap::new();
    let mut last: Option<String> = None;
    loop {
        let Ok(page) = registry.catalog(Some(1000), last.as_deref()).await else {
            break;
        };
        for name in &page.items {
            let Some(repo) = RepoName::parse(name) else {
                continue;
            };
            if let Ok(usage) = measure(registry, &repo).await {
                repositories.insert(name.clone(), usage);
            }
        }
        match (page.more, page.items.last()) {
            (true, Some(name)) if repositories.len() < SCAN_LIMIT => last = Some(name.clone()),
            _ => break,
        }
    }
    UsageSnapshot { repositories }
}

/// One repository's figures, from one tag listing and its tags' manifests.
async fn measure(registry: &Registry, repo: &RepoName) -> Result<RepositoryUsage, RegistryError> {
    let listing = registry.tag_listing(repo).await?;
    Ok(measure_listing(registry, repo, &listing).await)
}

/// A repository's figures from its tags (already listed) and their manifests.
pub async fn measure_listing(
    registry: &Registry,
    repo: &RepoName,
    listing: &TagListing,
) -> RepositoryUsage {
    let content = tagged_content(registry, repo, &listing.tags).await;
    RepositoryUsage {
        kind: repository_kind(registry, repo, listing.newest.as_ref()).await,
        size: content.iter().map(|(_, size)| size).sum(),
        tags: listing.tags.len(),
        last_push: listing.last_write,
        content,
    }
}

/// (digest key, size) of the first [`SIZED_TAGS`] tags' manifests and what they reference,
/// each digest once.
async fn tagged_content(registry: &Registry, repo: &RepoName, tags: &[Tag]) -> Vec<(u64, u64)> {
    let mut seen = HashSet::new();
    let mut content = Vec::new();
    let mut count = |digest: &str, size: u64| {
        let key = digest_key(digest);
        if seen.insert(key) {
            content.push((key, size));
        }
    };
    for tag in tags.iter().take(SIZED_TAGS) {
        let Ok(manifest) = registry
            .get_manifest(repo, &Reference::Tag(tag.clone()))
            .await
        else {
            continue;
        };
        count(&manifest.link.digest.to_string(), manifest.link.size);
        let doc: Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
        let descriptors = std::iter::once(&doc["config"])
            .chain(doc["layers"].as_array().into_iter().flatten())
            .chain(doc["manifests"].as_array().into_iter().flatten());
        for d in descriptors {
            if let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64()) {
                count(digest, size);
            }
        }
    }
    content
}

/// A digest in 8 bytes: the first 16 hex digits of its hash (collisions would need a
/// 64-bit prefix match of two cryptographic hashes).
fn digest_key(digest: &str) -> u64 {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            digest.hash(&mut h);
            h.finish()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(content: &[(u64, u64)]) -> RepositoryUsage {
        RepositoryUsage {
            size: content.iter().map(|(_, s)| s).sum(),
            content: content.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn totals_count_shared_content_once() {
        let snapshot = UsageSnapshot {
            repositories: HashMap::from([
                ("a".to_owned(), usage(&[(1, 100), (2, 10)])),
                ("b".to_owned(), usage(&[(1, 100), (3, 5)])),
            ]),
        };
        assert_eq!(snapshot.total(["a", "b"]), 115);
        assert_eq!(snapshot.total(["b"]), 105);
        assert_eq!(snapshot.total(["missing"]), 0);
    }

    #[test]
    fn digest_keys_come_from_the_hash() {
        assert_eq!(
            digest_key("sha256:00000000000000ff0123"),
            0xff,
            "the first 16 hex digits"
        );
        assert_ne!(digest_key("bogus"), digest_key("other"));
    }
}
