//! Running jobs: one at a time under the lease, with a record that every replica reads
//! (rewritten every 2 s), live counters for this process, and the outcome logged once.

use std::sync::Arc;
use std::time::Duration;

use super::BackupService;
use super::format::SnapshotId;
use super::jobs::{self, Job, JobKind, JobState};
use crate::lease::{Lease, LeaseError};
use crate::progress::Progress;

/// A job that holds the lease and has not run yet.
#[derive(Debug)]
pub struct Started {
    lease: Lease,
    pub(super) job: Job,
    pub(super) progress: Arc<Progress>,
}

impl Started {
    pub fn id(&self) -> &SnapshotId {
        &self.job.id
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }
}

/// A job that failed with findings worth keeping in its record (a verify's damage).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct JobFailure {
    pub message: String,
    pub result: serde_json::Value,
}

impl BackupService {
    /// Takes the lease for a new job, or says which job holds it.
    pub async fn begin(
        &self,
        kind: JobKind,
        started_by: &str,
        snapshot: Option<SnapshotId>,
    ) -> Result<Started, LeaseError> {
        let id = SnapshotId::new(chrono::Utc::now());
        let lease = Lease::acquire(
            self.registry.storage().clone(),
            &self.holder,
            kind.as_str(),
            id.as_str(),
            self.settings.lease_ttl,
        )
        .await?;
        if let Err(e) = self.jobs.prune().await {
            tracing::warn!(target: "backup", error = %e, "could not delete old job records");
        }
        let mut job = Job::start(id.clone(), kind, started_by, &self.holder);
        job.snapshot = snapshot.or_else(|| (kind == JobKind::Backup).then(|| id.clone()));
        // Written before anyone is told the job started, so that every replica (and the page
        // a browser is sent to) finds it at once.
        if let Err(e) = self.jobs.write(&job).await {
            tracing::warn!(target: "backup", error = %e, "could not write the job record");
        }
        let progress = Arc::new(Progress::default());
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, progress.clone()));
        Ok(Started {
            lease,
            job,
            progress,
        })
    }

    /// Runs a started job to its end: keeps the lease (stopping the job if it is lost or can
    /// no longer be renewed), writes the job record every 2 s and at the end, logs a failure
    /// and releases the lease.
    pub(super) async fn drive<T, F>(&self, started: Started, work: F) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = anyhow::Result<(T, serde_json::Value)>>,
    {
        let Started {
            mut lease,
            mut job,
            progress,
        } = started;
        let ticking = job.clone();
        let ticking_progress = progress.clone();
        let records = self.jobs.clone();
        let ticker = async move {
            let mut job = ticking;
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                job.update(ticking_progress.view());
                if let Err(e) = records.write(&job).await {
                    tracing::debug!(target: "backup", error = %e, "could not update the job record");
                }
            }
        };
        let outcome = tokio::select! {
            done = work => done,
            lost = lease.keep() => Err(anyhow::anyhow!("stopped: {lost}")),
            () = ticker => unreachable!("the ticker never ends"),
        };
        job.update(progress.view());
        job.finished_at = Some(jobs::now_rfc3339());
        let result = match outcome {
            Ok((value, result)) => {
                job.state = JobState::Succeeded;
                job.result = Some(result);
                Ok(value)
            }
            Err(e) => {
                job.state = JobState::Failed;
                job.error = Some(format!("{e:#}"));
                job.result = e.downcast_ref::<JobFailure>().map(|f| f.result.clone());
                tracing::error!(target: "backup", job = %job.id, kind = job.kind.as_str(), phase = %job.phase, error = %format!("{e:#}"), "{} failed", job.kind.as_str());
                Err(e)
            }
        };
        if let Err(e) = self.jobs.write(&job).await {
            tracing::warn!(target: "backup", error = %e, "could not write the job record");
        }
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_if(|(id, _)| *id == job.id);
        lease.release().await;
        result
    }

    /// Takes the lease and runs `work` in the background; answers the job's id at once.
    pub(super) async fn start_in_background<F, Fut, T>(
        self: &Arc<Self>,
        kind: JobKind,
        started_by: &str,
        snapshot: Option<SnapshotId>,
        work: F,
    ) -> Result<SnapshotId, LeaseError>
    where
        F: FnOnce(Arc<Self>, Started) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        let started = self.begin(kind, started_by, snapshot).await?;
        let id = started.id().clone();
        let this = self.clone();
        // The outcome is in the job record and the log.
        tokio::spawn(async move { work(this, started).await.map(|_| ()) });
        Ok(id)
    }

    /// A scheduled slot this process claimed: a backup, or a skipped job if another job runs.
    pub(super) async fn run_scheduled(&self, slot: chrono::DateTime<chrono::Utc>) {
        let slot = slot.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match self.begin(JobKind::Backup, "schedule", None).await {
            Ok(mut started) => {
                started.job.slot = Some(slot);
                let _ = self.backup(started).await;
            }
            Err(e) => {
                tracing::warn!(target: "backup", error = %e, "scheduled backup skipped");
                let mut job = Job::start(
                    SnapshotId::new(chrono::Utc::now()),
                    JobKind::Backup,
                    "schedule",
                    &self.holder,
                );
                job.state = JobState::Skipped;
                job.slot = Some(slot);
                job.finished_at = Some(job.started_at.clone());
                job.error = Some(e.to_string());
                if let Err(e) = self.jobs.write(&job).await {
                    tracing::warn!(target: "backup", error = %e, "could not write the job record");
                }
            }
        }
    }

    /// A job's record, with live counters when it runs in this process.
    pub async fn job(&self, id: &SnapshotId) -> anyhow::Result<Option<Job>> {
        let mut job = self.jobs.get(id).await?;
        if let Some(job) = job.as_mut() {
            self.live(job);
        }
        Ok(job)
    }

    /// Live counters for a job running in this process (other replicas' jobs show their
    /// record, rewritten every 2 s).
    fn live(&self, job: &mut Job) {
        if job.state != JobState::Running {
            return;
        }
        if let Some((_, progress)) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(running, _)| *running == job.id)
        {
            job.update(progress.view());
        }
    }

    /// The newest jobs first, with live counters.
    pub async fn jobs_with_progress(&self, limit: usize) -> anyhow::Result<Vec<Job>> {
        let mut jobs = self.jobs.list(limit).await?;
        for job in &mut jobs {
            self.live(job);
        }
        Ok(jobs)
    }

    /// The job running now on any replica (the lease's holder), if any.
    pub async fn running_job(&self) -> anyhow::Result<Option<Job>> {
        let Some(lease) = crate::lease::current(self.registry.storage().as_ref()).await? else {
            return Ok(None);
        };
        match SnapshotId::parse(&lease.job) {
            Some(id) => self.job(&id).await,
            None => Ok(None),
        }
    }
}
