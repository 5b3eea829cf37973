//! Deleting snapshots: their records first (so a snapshot is whole or gone), then a sweep of
//! the objects that no remaining snapshot names. It runs under the job lease, so no backup is
//! uploading objects that its record does not name yet.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_storage_core::{BackupTarget, Digest};
use serde::Serialize;

use super::BackupService;
use super::Which;
use super::format::{self, RepositoryDoc, SnapshotId};
use super::objects;
use crate::progress::Progress;

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    pub snapshots: Vec<SnapshotId>,
    pub objects: u64,
    pub bytes: u64,
}

/// Deletes the records of `ids`, then every object no remaining snapshot needs.
pub async fn delete(
    service: &BackupService,
    ids: &[SnapshotId],
    progress: &Arc<Progress>,
) -> anyhow::Result<Pruned> {
    let target = service.target.as_ref();
    // Only the registry whose backups the target holds deletes from it.
    super::run::ensure_marker(target, service.registry_id().await?).await?;
    progress.set_phase("delete");
    for id in ids {
        target.delete(&format::snapshot(id)).await.map_err(|e| {
            anyhow::anyhow!("deleting snapshot {id} from {}: {e}", target.describe())
        })?;
    }
    let (objects, bytes) = sweep(service, progress).await?;
    Ok(Pruned {
        snapshots: ids.to_vec(),
        objects,
        bytes,
    })
}

/// Deletes what no snapshot names; answers how many objects and bytes.
async fn sweep(service: &BackupService, progress: &Arc<Progress>) -> anyhow::Result<(u64, u64)> {
    let target = service.target.as_ref();
    progress.set_phase("sweep");
    let mut documents: BTreeSet<Digest> = BTreeSet::new();
    let mut content: BTreeSet<Digest> = BTreeSet::new();
    for id in service.snapshot_ids().await? {
        let record = match service.snapshot(&Which::Id(id)).await {
            Ok(record) => record,
            Err(super::SnapshotError::NotFound(_)) => continue,
            Err(e) => anyhow::bail!("{e}"),
        };
        documents.insert(record.system.clone());
        for entry in &record.repositories {
            if documents.insert(entry.doc.clone()) {
                let doc: RepositoryDoc = objects::read_document(target, &entry.doc).await?;
                content.extend(doc.content().map(|(d, _)| d.clone()));
            }
        }
    }
    let mut doomed = Vec::new();
    for (prefix, keep) in [
        (format::BLOBS_PREFIX, &content),
        (format::META_PREFIX, &documents),
    ] {
        for object in objects::list_objects(target, prefix)
            .await
            .map_err(|e| anyhow::anyhow!("listing {}: {e}", target.describe()))?
        {
            if format::digest_of(&object.path).is_none_or(|d| !keep.contains(&d)) {
                doomed.push(object);
            }
        }
    }
    let bytes: u64 = doomed.iter().map(|o| o.size).sum();
    progress.set_totals(doomed.len() as u64, bytes);
    let count = doomed.len() as u64;
    futures_util::stream::iter(doomed.into_iter().map(|object| async move {
        delete_object(target, &object.path).await?;
        progress.add_object();
        progress.add_bytes(object.size);
        anyhow::Ok(())
    }))
    .buffer_unordered(service.settings.concurrency)
    .try_collect::<()>()
    .await?;
    Ok((count, bytes))
}

async fn delete_object(target: &dyn BackupTarget, path: &str) -> anyhow::Result<()> {
    let key = oci_storage_core::Key::new(path)
        .map_err(|e| anyhow::anyhow!("an object of the target has an invalid name: {e}"))?;
    target
        .delete(&key)
        .await
        .map_err(|e| anyhow::anyhow!("deleting {path} from {}: {e}", target.describe()))
}
