//! A backup run (docs/design/backup.md §1.3): inventory of the target, the cut (repository
//! documents), the copy of content the target lacks, the system document, and the record,
//! written last.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_storage_core::{BackupError, BackupTarget, Digest, StorageExt, WriteMode};

use super::BackupService;
use super::format::{
    self, ChartEntry, ManifestEntry, RepositoryDoc, RepositoryEntry, SnapshotId, SnapshotRecord,
    SystemDoc, Totals,
};
use super::jobs::now_rfc3339;
use super::objects;
use crate::progress::Progress;
use crate::records;
use crate::registry::manifest_doc::ManifestDoc;
use crate::registry::{ManifestLink, Registry, RepoName, layout};

/// Repositories cut at once.
const REPOSITORIES_AT_ONCE: usize = 8;
/// Manifests of one repository read at once.
const MANIFESTS_AT_ONCE: usize = 16;

/// Makes sure the target is an oci-storage backup this version can read and that it holds
/// this registry's backups (marking it so on first use): two registries writing to one prefix
/// would prune each other's snapshots.
/// A store that fails for a moment (SeaweedFS answers 500 under load) is tried again.
pub async fn ensure_marker(target: &dyn BackupTarget, registry_id: &str) -> anyhow::Result<()> {
    objects::with_retries(
        "checking the target's marker",
        |e| e.downcast_ref::<Refused>().is_some(),
        || ensure_marker_once(target, registry_id),
    )
    .await
}

/// The target is not one this registry may write to: trying again changes nothing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

async fn ensure_marker_once(target: &dyn BackupTarget, registry_id: &str) -> anyhow::Result<()> {
    match objects::read_small(target, &format::marker(), 4096).await {
        Ok(bytes) => {
            let marker: format::Marker = serde_json::from_slice(&bytes).map_err(|e| {
                Refused(format!(
                    "{} holds an unreadable marker: {e}",
                    target.describe()
                ))
            })?;
            marker.check().map_err(Refused)?;
            match &marker.registry {
                Some(owner) if owner != registry_id => Err(Refused(format!(
                    "{} holds the backups of another registry (id {owner}; this one is {registry_id}): give this registry a prefix of its own",
                    target.describe()
                ))
                .into()),
                _ => Ok(()),
            }
        }
        Err(BackupError::NotFound(_)) => {
            let mut marker = format::Marker::current();
            marker.registry = Some(registry_id.to_owned());
            let bytes = bytes::Bytes::from(serde_json::to_vec(&marker).expect("serializes"));
            let size = bytes.len() as u64;
            match target
                .put(
                    &format::marker(),
                    oci_storage_core::storage::bytes_stream(bytes),
                    size,
                    WriteMode::Create,
                )
                .await
            {
                Ok(()) | Err(BackupError::AlreadyExists(_)) => Ok(()),
                Err(e) => Err(anyhow::anyhow!("writing to {}: {e}", target.describe())),
            }
        }
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", target.describe())),
    }
}

/// A repository whose document is in the target.
struct SavedRepository {
    entry: RepositoryEntry,
    /// The content it needs, with sizes.
    content: Vec<(Digest, u64)>,
    /// The document's size, when this run uploaded it.
    uploaded: Option<u64>,
}

/// Uploads a repository's document unless the target has it (an unchanged repository).
async fn save_document(
    target: &dyn BackupTarget,
    doc: &RepositoryDoc,
    in_target: &BTreeSet<Digest>,
) -> anyhow::Result<SavedRepository> {
    let (bytes, digest) = format::encode(doc);
    let uploaded = if in_target.contains(&digest) {
        None
    } else {
        objects::put_document(target, bytes, &digest).await?
    };
    let content: Vec<(Digest, u64)> = doc.content().map(|(d, s)| (d.clone(), s)).collect();
    Ok(SavedRepository {
        entry: RepositoryEntry {
            name: doc.name.clone(),
            doc: digest,
            tags: doc.tags.len(),
            manifests: doc.manifests.len(),
            blobs: doc.blobs.len(),
            bytes: content.iter().map(|(_, s)| s).sum(),
        },
        content,
        uploaded,
    })
}

/// The sizes of registry content, listed once before the cut; content written since is asked
/// for one by one.
struct ContentSizes {
    listed: BTreeMap<Digest, u64>,
}

impl ContentSizes {
    async fn size(&self, registry: &Registry, digest: &Digest) -> anyhow::Result<Option<u64>> {
        if let Some(size) = self.listed.get(digest) {
            return Ok(Some(*size));
        }
        registry
            .content_size(digest)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))
    }
}

/// Reads one repository: its links, then every manifest they reach (closing over indexes),
/// into a document that names everything a restore needs.
async fn cut_repository(
    registry: &Registry,
    repo: &RepoName,
    sizes: &ContentSizes,
    charts: &BTreeMap<String, ChartEntry>,
) -> anyhow::Result<RepositoryDoc> {
    let context = |e: crate::registry::RegistryError| {
        anyhow::anyhow!("reading repository {repo}: {}", e.message)
    };
    let links = registry.export_links(repo).await.map_err(context)?;
    let mut known: BTreeMap<Digest, ManifestLink> = links.manifests.clone();
    for link in links.tags.values() {
        known
            .entry(link.digest.clone())
            .or_insert_with(|| link.clone());
    }
    let mut manifests: BTreeMap<Digest, ManifestEntry> = BTreeMap::new();
    let mut blob_refs: BTreeSet<Digest> = links.blobs.clone();
    let mut pending: Vec<ManifestLink> = known.values().cloned().collect();
    while !pending.is_empty() {
        let read: Vec<(ManifestLink, ManifestEntry, Vec<Digest>)> =
            futures_util::stream::iter(pending.drain(..).map(|link| async move {
                let bytes = registry.manifest_content(&link).await.map_err(context)?;
                let (refs, children) = match ManifestDoc::parse(&bytes, Some(&link.media_type)) {
                    Ok(doc) => {
                        let mut refs = doc.blobs.clone();
                        refs.extend(doc.children.iter().cloned());
                        (refs, doc.children)
                    }
                    Err(e) => {
                        tracing::warn!(target: "backup", repository = %repo, manifest = %link.digest, error = %e.message, "saving a manifest that does not parse without its references");
                        (Vec::new(), Vec::new())
                    }
                };
                let entry = ManifestEntry {
                    media_type: link.media_type.clone(),
                    size: link.size,
                    refs,
                };
                anyhow::Ok((link, entry, children))
            }))
            .buffer_unordered(MANIFESTS_AT_ONCE)
            .try_collect()
            .await?;
        for (link, entry, children) in read {
            for blob in entry.refs.iter().filter(|r| !children.contains(r)) {
                blob_refs.insert(blob.clone());
            }
            manifests.insert(link.digest.clone(), entry);
            for child in children {
                if manifests.contains_key(&child) || known.contains_key(&child) {
                    continue;
                }
                // An index's child whose revision link was deleted: still needed by the index.
                let Some(size) = sizes.size(registry, &child).await? else {
                    anyhow::bail!(
                        "repository {repo}: the content of manifest {child}, listed by an index, is missing from the registry"
                    );
                };
                let bytes = registry
                    .manifest_content(&ManifestLink {
                        digest: child.clone(),
                        media_type: String::new(),
                        size,
                    })
                    .await
                    .map_err(context)?;
                let media_type = ManifestDoc::parse(&bytes, None)
                    .map(|d| d.media_type)
                    .unwrap_or_else(|_| "application/vnd.oci.image.manifest.v1+json".into());
                let link = ManifestLink {
                    digest: child.clone(),
                    media_type,
                    size,
                };
                known.insert(child, link.clone());
                pending.push(link);
            }
        }
    }
    let mut blobs = BTreeMap::new();
    for digest in blob_refs {
        if manifests.contains_key(&digest) {
            continue;
        }
        match sizes.size(registry, &digest).await? {
            Some(size) => {
                blobs.insert(digest, size);
            }
            None => anyhow::bail!(
                "repository {repo}: the content of blob {digest} is missing from the registry"
            ),
        }
    }
    Ok(RepositoryDoc {
        kind: RepositoryDoc::KIND.into(),
        version: format::VERSION,
        name: repo.to_string(),
        tags: links.tags,
        manifests,
        blobs,
        charts: charts.clone(),
    })
}

/// The registry-wide records a snapshot keeps: API-token records and the initial admin's.
async fn system_doc(registry: &Registry) -> anyhow::Result<SystemDoc> {
    let storage = registry.storage();
    let mut doc = SystemDoc {
        kind: SystemDoc::KIND.into(),
        version: format::VERSION,
        ..SystemDoc::default()
    };
    let prefix = crate::auth::api_tokens::STORAGE_PREFIX;
    for meta in storage.list_all(prefix).await? {
        let Some(name) = meta.key.as_str().strip_prefix(prefix) else {
            continue;
        };
        if let Some(value) = records::API_TOKEN
            .read_listed::<serde_json::Value>(storage.as_ref(), &meta.key)
            .await?
        {
            doc.api_tokens.insert(name.to_owned(), value);
        }
    }
    doc.initial_admin = match storage
        .get_bytes(
            &layout::initial_admin(),
            records::API_TOKEN.max_bytes as u64,
        )
        .await
    {
        Ok(bytes) => serde_json::from_slice(&bytes).ok(),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    Ok(doc)
}

/// Runs a backup to the end and answers its record (already written).
pub async fn backup(
    service: &BackupService,
    id: &SnapshotId,
    started_by: &str,
    started_at: &str,
    progress: &Arc<Progress>,
) -> anyhow::Result<SnapshotRecord> {
    let registry = &service.registry;
    let target = service.target.as_ref();
    progress.set_phase("inventory");
    let registry_id = service.registry_id().await?;
    ensure_marker(target, registry_id).await?;
    let target_error = |e: BackupError| anyhow::anyhow!("listing {}: {e}", target.describe());
    let in_target = objects::list_sizes(target, format::BLOBS_PREFIX)
        .await
        .map_err(target_error)?;
    let docs_in_target: BTreeSet<Digest> = objects::list_sizes(target, format::META_PREFIX)
        .await
        .map_err(target_error)?
        .into_keys()
        .collect();
    let sizes = ContentSizes {
        listed: registry
            .content_inventory()
            .await
            .map_err(|e| anyhow::anyhow!("listing registry content: {}", e.message))?,
    };
    let mut charts: HashMap<String, BTreeMap<String, ChartEntry>> = HashMap::new();
    for entry in service.charts.entries_now().await {
        charts.entry(entry.repository.clone()).or_default().insert(
            entry.tag.clone(),
            ChartEntry {
                created: entry.created.clone(),
            },
        );
    }

    progress.set_phase("cut");
    let cut_started_at = now_rfc3339();
    let mut names = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = registry
            .catalog(Some(1000), last.as_deref())
            .await
            .map_err(|e| anyhow::anyhow!("listing repositories: {}", e.message))?;
        names.extend(page.items.iter().filter_map(|n| RepoName::parse(n)));
        match (page.more, page.items.last()) {
            (true, Some(name)) => last = Some(name.clone()),
            _ => break,
        }
    }
    names.retain(|repo| !(service.skip_repository)(repo));
    progress.set_totals(names.len() as u64, 0);
    let no_charts = BTreeMap::new();
    let sizes = &sizes;
    let charts = &charts;
    let no_charts = &no_charts;
    let docs_in_target = &docs_in_target;
    // Each repository's document is saved as soon as it is cut, so that memory holds the
    // content digests, not every document.
    let saved: Vec<SavedRepository> =
        futures_util::stream::iter(names.into_iter().map(|repo| async move {
            let doc = cut_repository(
                registry,
                &repo,
                sizes,
                charts.get(repo.as_str()).unwrap_or(no_charts),
            )
            .await?;
            let saved = save_document(target, &doc, docs_in_target).await?;
            progress.add_object();
            anyhow::Ok(saved)
        }))
        .buffered(REPOSITORIES_AT_ONCE)
        .try_collect()
        .await?;
    let cut_ended_at = now_rfc3339();

    let mut totals = Totals::default();
    let mut content: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut repositories = Vec::with_capacity(saved.len());
    for repository in saved {
        if let Some(size) = repository.uploaded {
            totals.new_objects += 1;
            totals.new_bytes += size;
        }
        content.extend(repository.content);
        repositories.push(repository.entry);
    }
    totals.objects = content.len() as u64;
    totals.bytes = content.values().sum();

    progress.set_phase("copy");
    // Missing, or there with the wrong size (a write cut short by an older version, a damaged
    // store): uploaded, the latter over what is there.
    let missing: Vec<(Digest, u64, WriteMode)> = content
        .into_iter()
        .filter_map(|(d, size)| match in_target.get(&d) {
            None => Some((d, size, WriteMode::Create)),
            Some(there) if *there != size => Some((d, size, WriteMode::Overwrite)),
            Some(_) => None,
        })
        .collect();
    let missing_bytes: u64 = missing.iter().map(|(_, s, _)| s).sum();
    progress.set_totals(missing.len() as u64, missing_bytes);
    let missing_count = missing.len() as u64;
    futures_util::stream::iter(missing.into_iter().map(|(digest, _, mode)| async move {
        objects::upload_content(registry, target, &digest, mode, progress).await?;
        progress.add_object();
        anyhow::Ok(())
    }))
    .buffer_unordered(service.settings.concurrency)
    .try_collect::<()>()
    .await?;
    totals.new_objects += missing_count;
    totals.new_bytes += missing_bytes;

    progress.set_phase("record");
    let (bytes, system) = format::encode(&system_doc(registry).await?);
    if let Some(size) = objects::put_document(target, bytes, &system).await? {
        totals.new_objects += 1;
        totals.new_bytes += size;
    }
    let record = SnapshotRecord {
        format: format::FORMAT.into(),
        version: format::VERSION,
        id: id.clone(),
        started_at: started_at.into(),
        cut_started_at,
        cut_ended_at,
        completed_at: now_rfc3339(),
        started_by: started_by.into(),
        source: registry.storage().describe(),
        registry_version: env!("CARGO_PKG_VERSION").into(),
        registry: Some(registry_id.to_owned()),
        repositories,
        system,
        totals,
    };
    let bytes = bytes::Bytes::from(serde_json::to_vec(&record).expect("serializes"));
    let size = bytes.len() as u64;
    target
        .put(
            &format::snapshot(id),
            oci_storage_core::storage::bytes_stream(bytes),
            size,
            WriteMode::Create,
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!("writing the snapshot record to {}: {e}", target.describe())
        })?;
    Ok(record)
}
