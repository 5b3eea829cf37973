//! Restore (docs/design/backup.md §2): a snapshot merged into a registry on any storage, empty
//! or not. Content first (verified by digest), then each repository's links in push order
//! (blob links, manifests children first, catalog entry, tags), then chart metadata and the
//! system records. Nothing is ever deleted; a tag that changed after the snapshot is kept
//! unless `overwrite` is asked for, and an immutable tag is never moved. Each tag's decision is
//! taken again just before it is written, so a push that lands while the content is copied is
//! kept too. Every step can be repeated, so a restore that was interrupted is run again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt};
use oci_storage_core::{Digest, Key, PutMode, StorageError, StorageExt};
use serde::Serialize;

use super::BackupService;
use super::format::{RepositoryDoc, SnapshotRecord, SystemDoc};
use super::objects;
use crate::progress::Progress;
use crate::registry::{ManifestLink, RepoName, Tag, TagState, layout};

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

/// What becomes of the API tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiTokens {
    /// The destination has none: the snapshot's are restored.
    #[default]
    Restore,
    /// The destination has its own, which are kept (a merge never brings back a revoked one).
    Keep,
}

impl ApiTokens {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restore => "restore",
            Self::Keep => "keep",
        }
    }
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
    pub api_tokens: ApiTokens,
}

/// How many tags of each list a job record keeps (the counts are all there).
const LISTED_IN_RECORD: usize = 100;

impl Plan {
    /// The plan as a job record keeps it: each list cut to its first 100 entries, with its
    /// full length, so that a restore of thousands of tags still has a small record.
    pub fn for_record(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("serializes");
        for (field, list) in [
            ("tagsMoved", &self.tags_moved),
            ("tagsKeptNewer", &self.tags_kept_newer),
            ("tagsKeptImmutable", &self.tags_kept_immutable),
        ] {
            value[field] = serde_json::to_value(&list[..list.len().min(LISTED_IN_RECORD)])
                .expect("serializes");
            value[format!("{field}Count")] = list.len().into();
        }
        value
    }
}

/// The decision about one tag.
#[derive(Debug, Clone, PartialEq)]
enum TagAction {
    /// Point it at the snapshot's manifest, if it still points at `from` (absent: `None`).
    Write { from: Option<Digest> },
    /// Already where the snapshot has it.
    Unchanged,
    /// Kept as the destination has it.
    Skip,
}

/// What the plan keeps of a repository (its document is read again to apply it, so that
/// memory holds one document at a time).
struct RepositoryPlan {
    repo: RepoName,
    doc: Digest,
    tags: BTreeMap<String, TagAction>,
}

fn parse_time(rfc3339: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// How tags are decided: against the snapshot's cut, with or without `overwrite`.
#[derive(Debug, Clone, Copy)]
struct Rules {
    cut: Option<SystemTime>,
    options: RestoreOptions,
}

impl Rules {
    fn of(record: &SnapshotRecord, options: RestoreOptions) -> Self {
        Self {
            cut: parse_time(&record.cut_started_at),
            options,
        }
    }

    /// Decides a tag from where it points now, counting the decision in `plan`.
    fn decide(
        &self,
        plan: &mut Plan,
        (repository, name): (&str, &str),
        immutable: bool,
        link: &ManifestLink,
        current: Option<TagState>,
    ) -> TagAction {
        let Some(state) = current else {
            plan.tags_added += 1;
            return TagAction::Write { from: None };
        };
        if state.link.digest == link.digest {
            plan.tags_unchanged += 1;
            return TagAction::Unchanged;
        }
        let change = TagChange {
            repository: repository.to_owned(),
            tag: name.to_owned(),
            from: state.link.digest.clone(),
            to: link.digest.clone(),
        };
        let older = matches!((state.last_modified, self.cut), (Some(at), Some(cut)) if at <= cut);
        if immutable {
            plan.tags_kept_immutable.push(change);
            TagAction::Skip
        } else if older || self.options.overwrite {
            plan.tags_moved.push(change);
            TagAction::Write {
                from: Some(state.link.digest),
            }
        } else {
            plan.tags_kept_newer.push(change);
            TagAction::Skip
        }
    }
}

/// Reads the snapshot's documents and compares them with the destination.
async fn plan(
    service: &BackupService,
    record: &SnapshotRecord,
    options: RestoreOptions,
) -> anyhow::Result<(Plan, Vec<RepositoryPlan>, Vec<(Digest, u64)>)> {
    let registry = &service.registry;
    let target = service.target.as_ref();
    let rules = Rules::of(record, options);
    let mut plan = Plan {
        snapshot: record.id.to_string(),
        ..Plan::default()
    };
    let fail = |e: crate::registry::RegistryError| anyhow::anyhow!("{}", e.message);
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
        if registry.repository_exists(&repo).await.map_err(fail)? {
            plan.repositories_merged += 1;
        } else {
            plan.repositories_created += 1;
        }
        let mut tags = BTreeMap::new();
        for (name, link) in &doc.tags {
            let Some(tag) = Tag::parse(name) else {
                continue;
            };
            let current = registry.tag_state(&repo, &tag).await.map_err(fail)?;
            let immutable = registry.settings().is_immutable(&tag);
            let action = rules.decide(&mut plan, (&doc.name, name), immutable, link, current);
            tags.insert(name.clone(), action);
        }
        for (digest, size) in doc.content() {
            if !present.contains_key(digest) {
                needed.insert(digest.clone(), size);
            }
        }
        repositories.push(RepositoryPlan {
            repo,
            doc: entry.doc.clone(),
            tags,
        });
    }
    plan.content_objects = needed.len() as u64;
    plan.content_bytes = needed.values().sum();
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
    plan.api_tokens = if has_tokens {
        ApiTokens::Keep
    } else {
        ApiTokens::Restore
    };
    Ok((plan, repositories, needed.into_iter().collect()))
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
    let (mut plan, repositories, needed) = plan(service, record, options).await?;

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
    let rules = Rules::of(record, options);
    for repository in &repositories {
        let doc: RepositoryDoc = objects::read_document(target, &repository.doc).await?;
        restore_repository(service, &mut plan, repository, &doc, rules).await?;
        progress.add_object();
    }

    progress.set_phase("system");
    let system: SystemDoc = objects::read_document(target, &record.system).await?;
    restore_system(service, &system, plan.api_tokens == ApiTokens::Restore).await?;
    if let Some(id) = &record.registry {
        adopt_registry_id(service, id).await?;
    }
    Ok(plan)
}

/// One repository's links, in push order, then its tags and their chart metadata.
async fn restore_repository(
    service: &BackupService,
    plan: &mut Plan,
    repository: &RepositoryPlan,
    doc: &RepositoryDoc,
    rules: Rules,
) -> anyhow::Result<()> {
    let registry = &service.registry;
    let repo = &repository.repo;
    let fail = |e: crate::registry::RegistryError| anyhow::anyhow!("{}", e.message);
    for digest in doc.blobs.keys() {
        registry
            .import_blob_link(repo, digest)
            .await
            .map_err(fail)?;
    }
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
    }
    registry.import_catalog_entry(repo).await.map_err(fail)?;
    for (name, link) in &doc.tags {
        let Some(tag) = Tag::parse(name) else {
            continue;
        };
        let write = match repository.tags.get(name) {
            Some(TagAction::Write { from }) => {
                // Taken again: a push since the plan is newer than the snapshot.
                let now = registry.tag_state(repo, &tag).await.map_err(fail)?;
                if now.as_ref().map(|s| &s.link.digest) == from.as_ref() {
                    true
                } else {
                    let mut late = Plan::default();
                    let immutable = registry.settings().is_immutable(&tag);
                    let again = rules.decide(&mut late, (&doc.name, name), immutable, link, now);
                    plan.tags_kept_newer.extend(late.tags_kept_newer);
                    plan.tags_kept_immutable.extend(late.tags_kept_immutable);
                    matches!(again, TagAction::Write { .. })
                }
            }
            Some(TagAction::Unchanged) => {
                // Already in place, but its chart record may be missing (a restore killed
                // between the tag and the record).
                restore_chart(service, repo, &tag, doc, true).await;
                continue;
            }
            _ => false,
        };
        if write {
            registry.import_tag(repo, &tag, link).await.map_err(fail)?;
            restore_chart(service, repo, &tag, doc, false).await;
        }
    }
    Ok(())
}

/// Records the chart a restored tag points at, if it is one: metadata is derived from the
/// content, and the snapshot's `created` keeps index.yaml as it was (a chart pushed too late
/// for the backup's chart index keeps its own). `only_if_missing`: not when it has a record.
async fn restore_chart(
    service: &BackupService,
    repo: &RepoName,
    tag: &Tag,
    doc: &RepositoryDoc,
    only_if_missing: bool,
) {
    if only_if_missing
        && !matches!(
            service.charts.record(repo.as_str(), tag.as_str()).await,
            Ok(None)
        )
    {
        return;
    }
    let created = doc.charts.get(tag.as_str()).map(|c| c.created.as_str());
    if let Err(e) = service.charts.restore_chart(repo, tag, created).await {
        tracing::warn!(target: "backup", repository = %repo, tag = %tag, error = %e.message, "chart metadata not restored; `oci-storage reindex-charts` rebuilds it");
    }
}

async fn restore_system(
    service: &BackupService,
    system: &SystemDoc,
    tokens: bool,
) -> anyhow::Result<()> {
    if tokens {
        for (name, value) in &system.api_tokens {
            let Ok(key) = Key::new(format!("{}{name}", crate::auth::api_tokens::STORAGE_PREFIX))
            else {
                continue;
            };
            create(service, key, value).await?;
        }
    }
    if let Some(admin) = &system.initial_admin {
        create(service, layout::initial_admin(), admin).await?;
    }
    Ok(())
}

/// Writes a record unless one exists.
async fn create(
    service: &BackupService,
    key: Key,
    value: &serde_json::Value,
) -> Result<(), StorageError> {
    let bytes = bytes::Bytes::from(serde_json::to_vec(value).expect("serializes"));
    match service
        .registry
        .storage()
        .put_bytes(&key, bytes, PutMode::Create)
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A registry restored from a snapshot, and without an id of its own yet, takes the id of the
/// registry the snapshot came from: it is that registry, moved (so it may go on backing up to
/// the same target). A registry that had its own id keeps it.
async fn adopt_registry_id(service: &BackupService, id: &str) -> anyhow::Result<()> {
    create(
        service,
        layout::registry_id(),
        &serde_json::json!({ "id": id }),
    )
    .await?;
    Ok(())
}
