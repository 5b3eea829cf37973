//! Mark: from every repository's tags (and, unless `gc.untagged`, every manifest revision),
//! what is reachable through index children, referrers and subjects; and from that, what a
//! run may take away. Anything written after `cutoff` (now − `gc.delay`) is kept whatever it
//! is, so that a push under way — blobs first, the manifest last — is never collected.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_storage_core::{Digest, StorageError, StorageExt};

use super::inventory::{Inventory, Object, Repository};
use crate::progress::Progress;
use crate::records;
use crate::registry::manifest_doc::ManifestDoc;
use crate::registry::{ManifestLink, Registry, RegistryError, RepoName, layout};

/// Reads at once (tag records, manifests).
const READS_AT_ONCE: usize = 16;

/// What a run takes away.
#[derive(Debug, Default)]
pub struct Plan {
    /// Manifest revisions no tag reaches (with `gc.untagged`).
    pub manifests: Vec<(RepoName, Digest, Object)>,
    /// Referrer entries whose referrer is gone or taken away.
    pub referrers: Vec<Object>,
    /// Blob links no kept manifest of the repository references.
    pub blob_links: Vec<Object>,
    /// Stored content nothing keeps.
    pub content: Vec<(Digest, Object)>,
    /// Links and content that kept manifests need and that are not there (an earlier run
    /// swept them while a push relied on them and stopped before its recheck): a run puts
    /// back what its trash still holds.
    pub wanted: Vec<oci_storage_core::Key>,
    pub repositories: usize,
    pub kept_manifests: usize,
    pub kept_content: usize,
}

impl Plan {
    pub fn content_bytes(&self) -> u64 {
        self.content.iter().map(|(_, o)| o.size).sum()
    }
}

/// What a manifest references.
#[derive(Debug, Default)]
struct Refs {
    /// Config and layers.
    blobs: Vec<Digest>,
    /// Index children, and the subject of a referrer.
    manifests: Vec<Digest>,
}

/// Decides what the run takes away.
/// `untagged(repo)`: for a repository whose untagged manifests may go, the time before which
/// one must have been written (`None`: untagged manifests stay).
pub async fn plan(
    registry: &Registry,
    inventory: &Inventory,
    cutoff: SystemTime,
    untagged: &(dyn Fn(&str) -> Option<SystemTime> + Sync),
    progress: &Progress,
) -> Result<Plan, RegistryError> {
    let mut plan = Plan {
        repositories: inventory.repositories.len(),
        ..Plan::default()
    };
    let mut refs_cache: HashMap<Digest, Arc<Refs>> = HashMap::new();
    let mut kept_content: HashSet<Digest> = HashSet::new();
    let mut wanted: HashSet<oci_storage_core::Key> = HashSet::new();
    progress.set_phase("mark");
    progress.set_totals(inventory.repositories.len() as u64, 0);
    for (name, repository) in &inventory.repositories {
        let Some(repo) = RepoName::parse(name) else {
            tracing::warn!(target: "gc", repository = %name, "skipping links under a name that is not a repository name");
            progress.add_object();
            continue;
        };
        let kept = mark_repository(
            registry,
            inventory,
            repository,
            untagged(name).map(|t| t.min(cutoff)),
            &mut refs_cache,
        )
        .await?;
        plan.kept_manifests += kept.manifests.len();
        for digest in &kept.manifests {
            if !repository.manifests.contains_key(digest) {
                wanted.insert(layout::manifest_link(&repo, digest));
            }
        }
        for digest in &kept.blobs {
            if !repository.blobs.contains_key(digest) {
                wanted.insert(layout::blob_link(&repo, digest));
            }
        }
        for digest in kept.manifests.iter().chain(&kept.blobs) {
            if !inventory.content.contains_key(digest) {
                wanted.insert(layout::blob(digest));
            }
        }
        for (digest, object) in &repository.manifests {
            if kept.manifests.contains(digest) {
                kept_content.insert(digest.clone());
            } else {
                plan.manifests
                    .push((repo.clone(), digest.clone(), object.clone()));
            }
        }
        for (_, referrer, entry) in &repository.referrers {
            if !kept.manifests.contains(referrer) {
                plan.referrers.push(entry.clone());
            }
        }
        for (digest, link) in &repository.blobs {
            if kept.blobs.contains(digest) || !link.older_than(cutoff) {
                kept_content.insert(digest.clone());
            } else {
                plan.blob_links.push(link.clone());
            }
        }
        kept_content.extend(kept.blobs);
        kept_content.extend(kept.manifests);
        progress.add_object();
    }
    plan.wanted = wanted.into_iter().collect();
    for (digest, object) in &inventory.content {
        if kept_content.contains(digest) || !object.older_than(cutoff) {
            plan.kept_content += 1;
        } else {
            plan.content.push((digest.clone(), object.clone()));
        }
    }
    Ok(plan)
}

/// What one repository keeps: manifests (digests) and the blobs they reference.
#[derive(Debug, Default)]
struct Kept {
    manifests: HashSet<Digest>,
    blobs: HashSet<Digest>,
}

/// `untagged_before`: untagged revisions written before it are not roots (`None`: all are).
async fn mark_repository(
    registry: &Registry,
    inventory: &Inventory,
    repository: &Repository,
    untagged_before: Option<SystemTime>,
    refs_cache: &mut HashMap<Digest, Arc<Refs>>,
) -> Result<Kept, RegistryError> {
    let storage = registry.storage();
    let tag_targets: Vec<Option<ManifestLink>> = stream::iter(repository.tags.clone())
        .map(|tag: Object| async move {
            records::MANIFEST_LINK
                .read_listed::<ManifestLink>(storage.as_ref(), &tag.key)
                .await
                .map_err(crate::registry::error::storage("reading a tag"))
        })
        .buffered(READS_AT_ONCE)
        .try_collect()
        .await?;
    let mut queue: Vec<Digest> = tag_targets
        .into_iter()
        .flatten()
        .map(|l| l.digest)
        .collect();
    for (digest, revision) in &repository.manifests {
        if untagged_before.is_none_or(|before| !revision.older_than(before)) {
            queue.push(digest.clone());
        }
    }
    let mut referrers_of: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
    for (subject, referrer, _) in &repository.referrers {
        referrers_of.entry(subject).or_default().push(referrer);
    }
    let mut kept = Kept::default();
    while !queue.is_empty() {
        let wave: Vec<Digest> = queue
            .drain(..)
            .filter(|d| kept.manifests.insert(d.clone()))
            .collect();
        let missing: Vec<Digest> = wave
            .iter()
            .filter(|d| !refs_cache.contains_key(*d))
            .cloned()
            .collect();
        let read: Vec<(Digest, Arc<Refs>)> = stream::iter(missing)
            .map(|d| async move {
                let refs = read_refs(registry, inventory, &d).await?;
                Ok::<_, RegistryError>((d, Arc::new(refs)))
            })
            .buffer_unordered(READS_AT_ONCE)
            .try_collect()
            .await?;
        refs_cache.extend(read);
        for digest in &wave {
            let refs = refs_cache[digest].clone();
            kept.blobs.extend(refs.blobs.iter().cloned());
            queue.extend(refs.manifests.iter().cloned());
            if let Some(referrers) = referrers_of.get(digest) {
                queue.extend(referrers.iter().map(|d| (*d).clone()));
            }
        }
    }
    Ok(kept)
}

/// What the stored manifest `digest` references; nothing when it is not stored. A manifest
/// that cannot be parsed keeps every digest written in it.
async fn read_refs(
    registry: &Registry,
    inventory: &Inventory,
    digest: &Digest,
) -> Result<Refs, RegistryError> {
    let Some(stored) = inventory.content.get(digest) else {
        return Ok(Refs::default());
    };
    let max = registry.settings().max_manifest_bytes.max(stored.size);
    let bytes = match registry
        .storage()
        .get_bytes(&layout::blob(digest), max)
        .await
    {
        Ok(bytes) => bytes,
        // Taken away since the listing (a concurrent delete): nothing to follow.
        Err(StorageError::NotFound { .. }) => return Ok(Refs::default()),
        Err(e) => return Err(crate::registry::error::storage("reading a manifest")(e)),
    };
    let parsed = if digest.algorithm().digest(&bytes) == *digest {
        ManifestDoc::parse(&bytes, None).map_err(|e| e.message)
    } else {
        Err("its bytes do not hash to its digest".to_owned())
    };
    Ok(match parsed {
        // Every digest the manifest names is kept, not only the blobs a push must carry:
        // nondistributable layers, layers with `urls`, and anything a client may fetch.
        Ok(doc) => Refs {
            blobs: digests_in(&bytes),
            manifests: doc.children.into_iter().chain(doc.subject).collect(),
        },
        Err(e) => {
            tracing::warn!(target: "gc", manifest = %digest, error = %e, "a stored manifest cannot be read as one: everything it names is kept");
            let named = digests_in(&bytes);
            Refs {
                blobs: named.clone(),
                manifests: named,
            }
        }
    })
}

/// Every `sha256:<64 hex>` / `sha512:<128 hex>` written in `bytes`.
fn digests_in(bytes: &[u8]) -> Vec<Digest> {
    let text = String::from_utf8_lossy(bytes);
    let mut found = Vec::new();
    for (at, _) in text.match_indices("sha") {
        let rest = &text[at..];
        for len in [7 + 64, 7 + 128] {
            if let Some(candidate) = rest.get(..len)
                && let Ok(d) = candidate.parse::<Digest>()
            {
                found.push(d);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_found_in_any_text() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha512:{}", "b".repeat(128));
        let text = format!("{{\"x\": \"{a}\", \"y\": [\"{b}\"], \"z\": \"sha256:short\"}}");
        let found: Vec<String> = digests_in(text.as_bytes())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, vec![a, b]);
    }
}
