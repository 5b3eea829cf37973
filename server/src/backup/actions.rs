//! The jobs: backup (then pruning by `backup.keep`), delete, verify and restore, each run
//! through the driver, in this task or in the background.

use std::sync::Arc;

use super::driver::{JobFailure, Started};
use super::format::{SnapshotId, SnapshotRecord};
use super::jobs::JobKind;
use super::{
    BackupService, Findings, Plan, Pruned, RestoreOptions, keep, prune, restore, run, verify,
};
use crate::lease::LeaseError;

/// How many objects a failed verify names in its message (all are in the job's result).
const NAMED_IN_MESSAGE: usize = 5;

impl BackupService {
    /// Takes a snapshot now, in this task; then, with `backup.keep`, deletes the snapshots it
    /// does not keep (in the same job, under the same lease). A failed prune leaves the
    /// snapshot good: it is reported in the result and the log, and the next backup retries.
    pub async fn backup(&self, started: Started) -> anyhow::Result<SnapshotRecord> {
        let id = started.job.id.clone();
        let started_by = started.job.started_by.clone();
        let started_at = started.job.started_at.clone();
        let progress = started.progress.clone();
        let clock = std::time::Instant::now();
        let outcome = self
            .drive(started, async {
                let record = run::backup(self, &id, &started_by, &started_at, &progress).await?;
                let pruned = match self.settings.keep {
                    Some(keep) => Some(self.prune_to(keep, &progress).await),
                    None => None,
                };
                let result = serde_json::json!({
                    "totals": record.totals,
                    "pruned": pruned.as_ref().and_then(|p| p.as_ref().ok()),
                    "pruneError": pruned.as_ref().and_then(|p| p.as_ref().err()).map(|e| format!("{e:#}")),
                });
                Ok(((record, pruned), result))
            })
            .await;
        let metrics = crate::metrics::get();
        let Ok((record, pruned)) = outcome else {
            metrics.backup_ran(clock.elapsed(), None);
            return outcome.map(|(record, _)| record);
        };
        let t = record.totals;
        metrics.backup_ran(clock.elapsed(), Some(t.new_bytes));
        metrics.backup_snapshot(std::time::SystemTime::now(), t.bytes);
        tracing::info!(target: "backup", snapshot = %record.id, objects = t.objects, bytes = t.bytes, new_objects = t.new_objects, new_bytes = t.new_bytes, duration_ms = clock.elapsed().as_millis() as u64, started_by = %record.started_by, "backup finished");
        match pruned {
            Some(Ok(pruned)) if !pruned.snapshots.is_empty() => {
                tracing::info!(target: "backup", snapshots = pruned.snapshots.len(), objects = pruned.objects, bytes = pruned.bytes, "pruned snapshots that backup.keep does not keep")
            }
            Some(Err(e)) => {
                tracing::warn!(target: "backup", error = %format!("{e:#}"), "pruning old snapshots failed; the next backup tries again")
            }
            _ => {}
        }
        Ok(record)
    }

    /// Deletes the snapshots `keep` does not keep.
    async fn prune_to(
        &self,
        keep: oci_storage_config::Keep,
        progress: &Arc<crate::progress::Progress>,
    ) -> anyhow::Result<Pruned> {
        let ids = self.snapshot_ids().await?;
        let kept = keep::kept(&ids, keep);
        let doomed: Vec<SnapshotId> = ids.into_iter().filter(|id| !kept.contains(id)).collect();
        if doomed.is_empty() {
            return Ok(Pruned::default());
        }
        prune::delete(self, &doomed, progress).await
    }

    /// Deletes snapshots, then the objects no other snapshot needs.
    pub async fn delete(&self, started: Started, ids: Vec<SnapshotId>) -> anyhow::Result<Pruned> {
        let progress = started.progress.clone();
        let pruned = self
            .drive(started, async {
                let pruned = prune::delete(self, &ids, &progress).await?;
                let result = serde_json::to_value(&pruned).expect("serializes");
                Ok((pruned, result))
            })
            .await?;
        tracing::info!(target: "backup", snapshots = pruned.snapshots.len(), objects = pruned.objects, bytes = pruned.bytes, "delete finished");
        Ok(pruned)
    }

    /// Checks every object of a snapshot; damage fails the job, with every finding in its
    /// result.
    pub async fn verify(
        &self,
        started: Started,
        record: &SnapshotRecord,
    ) -> anyhow::Result<Findings> {
        let progress = started.progress.clone();
        let clock = std::time::Instant::now();
        let findings = self
            .drive(started, async {
                let findings = verify::verify(self, record, &progress).await?;
                let result = serde_json::to_value(&findings).expect("serializes");
                if !findings.is_clean() {
                    let named: Vec<String> = findings
                        .missing
                        .iter()
                        .map(|d| format!("{d} missing"))
                        .chain(
                            findings
                                .damaged
                                .iter()
                                .map(|(d, why)| format!("{d}: {why}")),
                        )
                        .take(NAMED_IN_MESSAGE)
                        .collect();
                    return Err(JobFailure {
                        message: format!(
                            "snapshot {} is damaged: {} object(s) missing, {} damaged ({}{})",
                            record.id,
                            findings.missing.len(),
                            findings.damaged.len(),
                            named.join("; "),
                            if findings.missing.len() + findings.damaged.len() > NAMED_IN_MESSAGE {
                                "; …"
                            } else {
                                ""
                            }
                        ),
                        result,
                    }
                    .into());
                }
                Ok((findings, result))
            })
            .await?;
        tracing::info!(target: "backup", snapshot = %record.id, objects = findings.objects, bytes = findings.bytes, duration_ms = clock.elapsed().as_millis() as u64, "verify finished");
        Ok(findings)
    }

    /// Restores a snapshot into this registry.
    pub async fn restore(
        &self,
        started: Started,
        record: &SnapshotRecord,
        options: RestoreOptions,
    ) -> anyhow::Result<Plan> {
        let progress = started.progress.clone();
        let clock = std::time::Instant::now();
        let plan = self
            .drive(started, async {
                let plan = restore::restore(self, record, options, &progress).await?;
                Ok((plan.clone(), plan.for_record()))
            })
            .await?;
        tracing::info!(target: "backup", snapshot = %record.id, repositories = plan.repositories_created + plan.repositories_merged, tags_added = plan.tags_added, tags_moved = plan.tags_moved.len(), tags_kept = plan.tags_kept_newer.len() + plan.tags_kept_immutable.len(), objects = plan.content_objects, bytes = plan.content_bytes, duration_ms = clock.elapsed().as_millis() as u64, "restore finished");
        Ok(plan)
    }

    /// What restoring `record` would change.
    pub async fn plan_restore(
        &self,
        record: &SnapshotRecord,
        options: RestoreOptions,
    ) -> anyhow::Result<Plan> {
        restore::dry_run(self, record, options).await
    }

    /// Starts a backup in the background; answers its job id at once.
    pub async fn start_backup(
        self: &Arc<Self>,
        started_by: &str,
    ) -> Result<SnapshotId, LeaseError> {
        self.start_in_background(
            JobKind::Backup,
            started_by,
            None,
            |this, started| async move { this.backup(started).await },
        )
        .await
    }

    /// Starts a verify of `record` in the background.
    pub async fn start_verify(
        self: &Arc<Self>,
        started_by: &str,
        record: SnapshotRecord,
    ) -> Result<SnapshotId, LeaseError> {
        let snapshot = Some(record.id.clone());
        self.start_in_background(
            JobKind::Verify,
            started_by,
            snapshot,
            |this, started| async move { this.verify(started, &record).await },
        )
        .await
    }

    /// Starts a restore of `record` in the background.
    pub async fn start_restore(
        self: &Arc<Self>,
        started_by: &str,
        record: SnapshotRecord,
        options: RestoreOptions,
    ) -> Result<SnapshotId, LeaseError> {
        let snapshot = Some(record.id.clone());
        self.start_in_background(
            JobKind::Restore,
            started_by,
            snapshot,
            move |this, started| async move { this.restore(started, &record, options).await },
        )
        .await
    }

    /// Starts deleting a snapshot in the background.
    pub async fn start_delete(
        self: &Arc<Self>,
        started_by: &str,
        snapshot: SnapshotId,
    ) -> Result<SnapshotId, LeaseError> {
        let job_snapshot = Some(snapshot.clone());
        self.start_in_background(
            JobKind::Delete,
            started_by,
            job_snapshot,
            |this, started| async move { this.delete(started, vec![snapshot]).await },
        )
        .await
    }
}
