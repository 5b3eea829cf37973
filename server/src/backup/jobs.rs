//! Job records: what a backup, restore or verify job is doing and how it ended, kept in
//! registry storage (`system/backup/jobs/<id>.json`) so that every replica, the web page and
//! the CLI see the same jobs. The holder rewrites its record every 2 s while it runs.

use std::sync::Arc;

use bytes::Bytes;
use oci_storage_core::{PutMode, Storage, StorageError, StorageExt, Within};
use serde::{Deserialize, Serialize};

use super::format::SnapshotId;
use crate::progress::{Count, ProgressView};
use crate::registry::layout;

const MAX_JOB_BYTES: u64 = 1024 * 1024;
/// Job records kept; older ones are deleted when a job starts.
const JOBS_KEPT: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Restore,
    Verify,
    Delete,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Verify => "verify",
            Self::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
    /// Its process died: the record says running, but the lease is gone or held by another job.
    Interrupted,
    /// A scheduled run that did not start because another job was running.
    Skipped,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Skipped => "skipped",
        }
    }
}

/// A job's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: SnapshotId,
    pub kind: JobKind,
    pub state: JobState,
    pub phase: String,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The snapshot written (backup) or read (restore, verify).
    pub snapshot: Option<SnapshotId>,
    pub holder: String,
    /// For a scheduled job: the slot it runs (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// What this job transferred (or checked), of what it has to.
    pub objects: Count,
    pub bytes: Count,
    /// Over the last 10 s.
    pub bytes_per_second: Option<u64>,
    pub eta_seconds: Option<u64>,
    pub error: Option<String>,
    /// Kind-specific outcome (a backup's totals, a verify's damage, a restore's counts).
    pub result: Option<serde_json::Value>,
}

/// Now, to the millisecond: the cut's times bound which pushes a snapshot holds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Job {
    pub fn start(id: SnapshotId, kind: JobKind, started_by: &str, holder: &str) -> Self {
        Self {
            id,
            kind,
            state: JobState::Running,
            phase: "starting".into(),
            started_by: started_by.into(),
            started_at: now_rfc3339(),
            finished_at: None,
            snapshot: None,
            holder: holder.into(),
            slot: None,
            objects: Count::default(),
            bytes: Count::default(),
            bytes_per_second: None,
            eta_seconds: None,
            error: None,
            result: None,
        }
    }

    pub fn update(&mut self, view: ProgressView) {
        self.phase = view.phase.into();
        self.objects = view.objects;
        self.bytes = view.bytes;
        self.bytes_per_second = view.bytes_per_second;
        self.eta_seconds = view.eta_seconds;
    }
}

/// Reads and writes job records.
#[derive(Debug, Clone)]
pub struct Jobs {
    storage: Arc<dyn Storage>,
}

impl Jobs {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    pub async fn write(&self, job: &Job) -> Result<(), StorageError> {
        let bytes = Bytes::from(serde_json::to_vec(job).expect("serializes"));
        self.storage
            .put_bytes(
                &layout::backup_job(job.id.as_str()),
                bytes,
                PutMode::Overwrite,
            )
            .await
            .map(|_| ())
    }

    /// A job by id; a running job whose lease is gone reads as interrupted.
    pub async fn get(&self, id: &SnapshotId) -> Result<Option<Job>, StorageError> {
        // A record that cannot be read (damaged, too large) is left out of the history
        // rather than breaking it.
        let job = match self
            .storage
            .get_within(&layout::backup_job(id.as_str()), MAX_JOB_BYTES)
            .await
        {
            Ok(Within::Read { bytes, .. }) => serde_json::from_slice::<Job>(&bytes).ok(),
            Ok(Within::TooLarge) | Err(StorageError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        match job {
            Some(job) => Ok(Some(self.judge(job).await?)),
            None => Ok(None),
        }
    }

    async fn judge(&self, mut job: Job) -> Result<Job, StorageError> {
        if job.state == JobState::Running {
            let holds = crate::lease::current(self.storage.as_ref())
                .await?
                .is_some_and(|lease| lease.job == job.id.as_str());
            if !holds {
                job.state = JobState::Interrupted;
            }
        }
        Ok(job)
    }

    /// The newest jobs first, at most `limit`.
    pub async fn list(&self, limit: usize) -> Result<Vec<Job>, StorageError> {
        let mut ids = self.ids().await?;
        ids.reverse();
        let mut jobs = Vec::new();
        for id in ids.into_iter().take(limit) {
            if let Some(job) = self.get(&id).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    async fn ids(&self) -> Result<Vec<SnapshotId>, StorageError> {
        let mut ids: Vec<SnapshotId> = self
            .storage
            .list_all(layout::BACKUP_JOBS_PREFIX)
            .await?
            .iter()
            .filter_map(|m| {
                m.key
                    .as_str()
                    .strip_prefix(layout::BACKUP_JOBS_PREFIX)
                    .and_then(|k| k.strip_suffix(".json"))
                    .and_then(SnapshotId::parse)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Deletes all but the newest records.
    pub async fn prune(&self) -> Result<(), StorageError> {
        let ids = self.ids().await?;
        let excess = ids.len().saturating_sub(JOBS_KEPT);
        for id in &ids[..excess] {
            self.storage
                .delete(&layout::backup_job(id.as_str()))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::progress::Progress;

    #[test]
    fn rate_and_eta_come_from_recent_progress() {
        let p = Progress::default();
        assert_eq!(p.view().objects.total, None);
        p.set_totals(10, 1000);
        p.add_bytes(100);
        p.add_object();
        let first = p.view();
        assert_eq!((first.objects.done, first.objects.total), (1, Some(10)));
        assert_eq!(first.bytes_per_second, None, "no rate from one sample");
        std::thread::sleep(Duration::from_millis(600));
        p.add_bytes(300);
        let later = p.view();
        let rate = later.bytes_per_second.unwrap();
        assert!(rate > 0 && rate <= 600, "{rate}");
        assert!(later.eta_seconds.is_some());
    }

    #[tokio::test]
    async fn running_jobs_without_the_lease_read_as_interrupted() {
        let (_dir, storage) = crate::test_support::temporary_storage().await;
        let jobs = Jobs::new(storage.clone());
        let id = SnapshotId::new(chrono::Utc::now());
        let job = Job::start(id.clone(), JobKind::Backup, "admin", "h");
        jobs.write(&job).await.unwrap();
        assert_eq!(
            jobs.get(&id).await.unwrap().unwrap().state,
            JobState::Interrupted
        );
        let lease = crate::lease::Lease::acquire(
            storage.clone(),
            "h",
            "backup",
            id.as_str(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(
            jobs.get(&id).await.unwrap().unwrap().state,
            JobState::Running
        );
        assert_eq!(jobs.list(10).await.unwrap().len(), 1);
        lease.release().await;
    }
}
