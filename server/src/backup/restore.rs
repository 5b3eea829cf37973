//! Restore (docs/design/backup.md §2): a snapshot merged into a registry on any storage, empty
//! or not. Content first (verified by digest), then each repository's links in push order
//! (blob links, manifests children first, catalog entry, tags), then chart metadata and the
//! system records. Nothing is ever deleted; a tag that changed after the snapshot is kept
//! unless `overwrite` is asked for, and an immutable tag is never moved. Every step can be
//! repeated, so a restore that was interrupted is simply run again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt};
use oci_storage_core::{Digest, Key, PutMode, StorageError, StorageExt};
use serde::Serialize;

use super::BackupService;
use super::format::{RepositoryDoc, SnapshotRecord, SystemDoc};
use super::jobs::Progress;
use super::objects;
use crate::registry::{ManifestLink, RepoName, Tag, layout};

/// How a restore treats the destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Move tags that changed in the destination after the snapshot back to the snapshot's
    /// manifest (immutable tags still never move).
    pub overwrite: bool,
}

/// A tag whose destination differs from the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagChange {
    pub repository: String,
    pub tag: String,
    /// Where it points in the destination.
    pub from: Digest,
    /// Where it points in the snapshot.
    pub to: Digest,
}

/// What a restore will do (and, after it ran, did).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub snapshot: String,
    /// Repositories of the snapshot that the destination does not have yet.
    pub repositories_created: usize,
    pub repositories_merged: usize,
    pub tags_added: usize,
    pub tags_unchanged: usize,
    /// Tags moved to the snapshot's manifest.
    pub tags_moved: Vec<TagChange>,
    /// Tags left as they are: changed after the snapshot (moved only with `overwrite`).
    pub tags_kept_newer: Vec<TagChange>,
    /// Immutable tags that differ: never moved.
    pub tags_kept_immutable: Vec<TagChange>,
    /// Content to copy from the target.
    pub content_objects: u64,
    pub content_bytes: u64,
    /// `restore`: the snapshot's API tokens; `keep`: the destination has its own.
    pub api_tokens: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TagAction {
    Write,
    /// Already where the snapshot has it.
    Unchanged,
    /// Kept as the destination has it.
    Skip,
}

struct RepositoryPlan {
    repo: RepoName,
    doc: RepositoryDoc,
    tags: BTreeMap<String, TagAction>,
}

fn parse_time(rfc3339: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// Reads the snapshot's documents and compares them with the destination.
async fn plan(
    service: &BackupService,
    record: &SnapshotRecord,
    options: RestoreOptions,
) -> anyhow::Result<(Plan, Vec<RepositoryPlan>, Vec<(Digest, u64)>, SystemDoc)> {
    let registry = &service.registry;
    let target = service.target.as_ref();
    let cut = parse_time(&record.cut_started_at);
    let mut plan = Plan {
        snapshot: record.id.to_string(),
        ..Plan::default()
    };
    let present = registry
        .content_inventory()
        .await
        .map_err(|e| anyhow::anyhow!("listing the registry's content: {}", e.message))?;
    let mut needed: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut repositories = Vec::new();
    for entry in &record.repositories {
        let doc: RepositoryDoc = objects::read_document(target, &entry.doc).await?;
        let repo = RepoName::parse(&doc.name).ok_or_else(|| {
            anyhow::anyhow!("the snapshot names an invalid repository {:?}", doc.name)
        })?;
        let exists = registry
            .repository_exists(&repo)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        if exists {
            plan.repositories_merged += 1;
        } else {
            plan.repositories_created += 1;
        }
        let mut tags = BTreeMap::new();
        for (name, link) in &doc.tags {
            let Some(tag) = Tag::parse(name) else {
                continue;
            };
            let current = registry
                .tag_state(&repo, &tag)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let action = match current {
                None => {
                    plan.tags_added += 1;
                    TagAction::Write
                }
                Some(state) if state.link.digest == link.digest => {
                    plan.tags_unchanged += 1;
                    TagAction::Unchanged
                }
                Some(state) => {
                    let change = TagChange {
                        repository: doc.name.clone(),
                        tag: name.clone(),
                        from: state.link.digest,
                        to: link.digest.clone(),
                    };
                    let older =
                        matches!((state.last_modified, cut), (Some(at), Some(cut)) if at <= cut);
                    if registry.settings().is_immutable(&tag) {
                        plan.tags_kept_immutable.push(change);
                        TagAction::Skip
                    } else if older || options.overwrite {
                        plan.tags_moved.push(change);
                        TagAction::Write
                    } else {
                        plan.tags_kept_newer.push(change);
                        TagAction::Skip
                    }
                }
            };
            tags.insert(name.clone(), action);
        }
        for (digest, size) in doc.content() {
            if !present.contains_key(digest) {
                needed.insert(digest.clone(), size);
            }
        }
        repositories.push(RepositoryPlan { repo, doc, tags });
    }
    plan.content_objects = needed.len() as u64;
    plan.content_bytes = needed.values().sum();
    let system: SystemDoc = objects::read_document(target, &record.system).await?;
    let has_tokens = !registry
        .storage()
        .list(
            crate::auth::api_tokens::STORAGE_PREFIX,
            oci_storage_core::ListOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await?
        .objects
        .is_empty();
    plan.api_tokens = if has_tokens { "keep" } else { "restore" }.into();
    Ok((plan, repositories, needed.into_iter().collect(), system))
}

/// What a restore would change, without changing anything.
pub async fn dry_run(
    service: &BackupService,
    record: &SnapshotRecord,
    options: RestoreOptions,
) -> anyhow::Result<Plan> {
    Ok(plan(service, record, options).await?.0)
}

/// Restores the snapshot and answers what it did.
pub async fn restore(
    service: &BackupService,
    record: &SnapshotRecord,
    options: RestoreOptions,
    progress: &Arc<Progress>,
) -> anyhow::Result<Plan> {
    let registry = &service.registry;
    let target = service.target.as_ref();
    progress.set_phase("plan");
    let (plan, repositories, needed, system) = plan(service, record, options).await?;

    progress.set_phase("content");
    progress.set_totals(needed.len() as u64, plan.content_bytes);
    let digests: Vec<Digest> = needed.into_iter().map(|(d, _)| d).collect();
    futures_util::stream::iter(digests.into_iter().map(|digest| async move {
        objects::download_content(registry, target, &digest, progress).await?;
        progress.add_object();
        anyhow::Ok(())
    }))
    .buffer_unordered(service.settings.concurrency)
    .try_collect::<()>()
    .await?;

    progress.set_phase("repositories");
    progress.set_totals(repositories.len() as u64, 0);
    let fail = |e: crate::registry::RegistryError| anyhow::anyhow!("{}", e.message);
    for RepositoryPlan { repo, doc, tags } in &repositories {
        for digest in doc.blobs.keys() {
            registry
                .import_blob_link(repo, digest)
                .await
                .map_err(fail)?;
        }
        let mut written: BTreeSet<&Digest> = BTreeSet::new();
        for (digest, entry) in doc.manifests_children_first() {
            let link = ManifestLink {
                digest: digest.clone(),
                media_type: entry.media_type.clone(),
                size: entry.size,
            };
            let bytes = registry.manifest_content(&link).await.map_err(fail)?;
            registry
                .import_manifest(repo, &link, &bytes)
                .await
                .map_err(fail)?;
            written.insert(digest);
        }
        registry.import_catalog_entry(repo).await.map_err(fail)?;
        for (name, link) in &doc.tags {
            let Some(tag) = Tag::parse(name) else {
                continue;
            };
            if tags.get(name) == Some(&TagAction::Write) {
                registry.import_tag(repo, &tag, link).await.map_err(fail)?;
            }
            // Chart metadata is derived from the content; only `created` comes from the
            // snapshot, so that index.yaml reads as it did. A tag that already pointed here
            // may lack its record (a restore killed between the two): it is written then too.
            let Some(chart) = doc.charts.get(name) else {
                continue;
            };
            let wanted = match tags.get(name) {
                Some(TagAction::Write) => true,
                Some(TagAction::Unchanged) => service
                    .charts
                    .record(repo.as_str(), name)
                    .await
                    .map_or(true, |record| record.is_none()),
                _ => false,
            };
            if wanted
                && let Err(e) = service
                    .charts
                    .restore_chart(repo, &tag, &chart.created)
                    .await
            {
                tracing::warn!(target: "backup", repository = %repo, tag = %tag, error = %e.message, "chart metadata not restored; `oci-storage reindex-charts` rebuilds it");
            }
        }
        progress.add_object();
    }

    progress.set_phase("system");
    restore_system(service, &system, plan.api_tokens == "restore").await?;
    Ok(plan)
}

async fn restore_system(
    service: &BackupService,
    system: &SystemDoc,
    tokens: bool,
) -> anyhow::Result<()> {
    let storage = service.registry.storage();
    let create = |key: Key, value: &serde_json::Value| {
        let bytes = bytes::Bytes::from(serde_json::to_vec(value).expect("serializes"));
        async move {
            match storage.put_bytes(&key, bytes, PutMode::Create).await {
                Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
    };
    if tokens {
        for (name, value) in &system.api_tokens {
            let Ok(key) = Key::new(format!("{}{name}", crate::auth::api_tokens::STORAGE_PREFIX))
            else {
                continue;
            };
            create(key, value).await?;
        }
    }
    if let Some(admin) = &system.initial_admin {
        create(layout::initial_admin(), admin).await?;
    }
    Ok(())
}
