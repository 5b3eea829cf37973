//! Reading snapshots from the target: ids (the records' names), records, and summaries of
//! them for listings. Records never change once written, so summaries are kept in memory for
//! the snapshots last listed, and a history page reads the bucket's listing, not every record.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use oci_storage_core::BackupError;
use serde::Serialize;

use super::format::{self, MAX_DOCUMENT_BYTES, SnapshotId, SnapshotRecord, Totals};
use super::{BackupService, Which, objects};

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no snapshot {0} in the backup target")]
    NotFound(String),
    #[error("the backup target holds no snapshot yet")]
    NoneYet,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A snapshot record without its repository list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    pub id: SnapshotId,
    pub started_at: String,
    pub cut_started_at: String,
    pub cut_ended_at: String,
    pub completed_at: String,
    pub started_by: String,
    pub source: String,
    pub repositories: usize,
    pub totals: Totals,
}

impl From<&SnapshotRecord> for SnapshotSummary {
    fn from(r: &SnapshotRecord) -> Self {
        Self {
            id: r.id.clone(),
            started_at: r.started_at.clone(),
            cut_started_at: r.cut_started_at.clone(),
            cut_ended_at: r.cut_ended_at.clone(),
            completed_at: r.completed_at.clone(),
            started_by: r.started_by.clone(),
            source: r.source.clone(),
            repositories: r.repositories.len(),
            totals: r.totals,
        }
    }
}

/// Summaries by id, for the snapshots of the last listing only.
#[derive(Debug, Default)]
pub struct SummaryCache(Mutex<BTreeMap<SnapshotId, Arc<SnapshotSummary>>>);

impl BackupService {
    /// Complete snapshots, oldest first.
    pub async fn snapshot_ids(&self) -> anyhow::Result<Vec<SnapshotId>> {
        let mut ids: Vec<SnapshotId> =
            objects::list_paths(self.target.as_ref(), format::SNAPSHOTS_PREFIX)
                .await
                .map_err(|e| anyhow::anyhow!("listing {}: {e}", self.target.describe()))?
                .iter()
                .filter_map(|p| SnapshotId::of_record(p))
                .collect();
        ids.sort();
        Ok(ids)
    }

    /// A snapshot's record.
    pub async fn snapshot(&self, which: &Which) -> Result<SnapshotRecord, SnapshotError> {
        let id = match which {
            Which::Id(id) => id.clone(),
            Which::Latest => self
                .snapshot_ids()
                .await?
                .pop()
                .ok_or(SnapshotError::NoneYet)?,
        };
        let bytes = match objects::read_small(
            self.target.as_ref(),
            &format::snapshot(&id),
            MAX_DOCUMENT_BYTES,
        )
        .await
        {
            Ok(bytes) => bytes,
            Err(BackupError::NotFound(_)) => return Err(SnapshotError::NotFound(id.to_string())),
            Err(e) => return Err(anyhow::anyhow!("reading snapshot {id}: {e}").into()),
        };
        let record: SnapshotRecord = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("snapshot {id} cannot be read: {e}"))?;
        record
            .marker()
            .check()
            .map_err(|e| anyhow::anyhow!("snapshot {id}: {e}"))?;
        Ok(record)
    }

    /// Every complete snapshot's record, oldest first (reads each one).
    pub async fn snapshots(&self) -> anyhow::Result<Vec<SnapshotRecord>> {
        let mut out = Vec::new();
        for id in self.snapshot_ids().await? {
            match self.snapshot(&Which::Id(id)).await {
                Ok(record) => out.push(record),
                // Deleted since it was listed.
                Err(SnapshotError::NotFound(_)) => {}
                Err(e) => return Err(anyhow::anyhow!("{e}")),
            }
        }
        Ok(out)
    }

    /// Sets the backup metrics from the newest snapshot in the target, so that a process
    /// that has not run a backup yet reports the last one (its alert must not fire on a restart).
    pub async fn report_latest_to_metrics(&self) {
        match self.summaries().await {
            Ok(summaries) => {
                if let Some(latest) = summaries.last()
                    && let Ok(at) = chrono::DateTime::parse_from_rfc3339(&latest.completed_at)
                {
                    crate::metrics::get().backup_snapshot(at.into(), latest.totals.bytes);
                }
            }
            Err(e) => {
                tracing::warn!(target: "backup", error = %format!("{e:#}"), "could not read the snapshots for the metrics")
            }
        }
    }

    /// Every complete snapshot's summary, oldest first: one listing of the target, and a read
    /// of the records not seen before.
    pub async fn summaries(&self) -> anyhow::Result<Vec<Arc<SnapshotSummary>>> {
        let ids = self.snapshot_ids().await?;
        let known = self
            .summaries
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut fresh = BTreeMap::new();
        for id in ids {
            let summary = match known.get(&id) {
                Some(summary) => summary.clone(),
                None => match self.snapshot(&Which::Id(id.clone())).await {
                    Ok(record) => Arc::new(SnapshotSummary::from(&record)),
                    Err(SnapshotError::NotFound(_)) => continue,
                    Err(e) => return Err(anyhow::anyhow!("{e}")),
                },
            };
            fresh.insert(id, summary);
        }
        let listed = fresh.values().cloned().collect();
        *self.summaries.0.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(listed)
    }
}
