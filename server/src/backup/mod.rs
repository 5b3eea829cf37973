//! Backups: snapshots of the registry in a [`BackupTarget`], restores from them, and checks of
//! them (docs/design/backup.md). [`BackupService`] is what the CLI, the REST API and the web
//! page call; each job runs under the one lease (`lease`), records its progress (`jobs`) and
//! logs one line when it ends.

pub mod commands;
pub mod format;
pub mod jobs;
mod keep;
pub mod lease;
mod objects;
pub mod progress_line;
pub mod prune;
pub mod restore;
mod run;
pub mod schedule;
pub mod verify;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_storage_core::{BackupError, BackupTarget};

use crate::charts::Charts;
use crate::registry::{Registry, RepoName};
use format::{MAX_DOCUMENT_BYTES, SnapshotId, SnapshotRecord};
use jobs::{Job, JobKind, JobState, Jobs, Progress};
use lease::{Lease, LeaseError};
pub use prune::Pruned;
pub use restore::{Plan, RestoreOptions};
pub use verify::Findings;

/// Backup behaviour (from `backup` in config).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Objects transferred at once.
    pub concurrency: usize,
    pub lease_ttl: Duration,
    pub schedule: Option<oci_storage_config::Schedule>,
    /// Snapshots kept after each backup; `None` keeps all.
    pub keep: Option<oci_storage_config::Keep>,
}

/// Whether a repository is left out of snapshots (the proxy's caches of upstreams).
pub type SkipRepository = Arc<dyn Fn(&RepoName) -> bool + Send + Sync>;

/// Runs and reports backup jobs.
pub struct BackupService {
    registry: Registry,
    charts: Arc<Charts>,
    target: Arc<dyn BackupTarget>,
    settings: Settings,
    skip_repository: SkipRepository,
    holder: String,
    jobs: Jobs,
    /// The job running in this process, with its live counters.
    running: Mutex<Option<(SnapshotId, Arc<Progress>)>>,
}

impl std::fmt::Debug for BackupService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupService")
            .field("target", &self.target.describe())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Which snapshot: an id, or the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    Latest,
    Id(SnapshotId),
}

impl std::str::FromStr for Which {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "latest" {
            return Ok(Self::Latest);
        }
        SnapshotId::parse(s).map(Self::Id).ok_or_else(|| {
            format!("{s:?} is neither a snapshot id (20261201T030000.000Z-3f2a9c) nor latest")
        })
    }
}

/// A job that holds the lease and has not run yet.
#[derive(Debug)]
pub struct Started {
    lease: Lease,
    job: Job,
    progress: Arc<Progress>,
}

impl Started {
    pub fn id(&self) -> &SnapshotId {
        &self.job.id
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }
}

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

impl BackupService {
    pub fn new(
        registry: Registry,
        charts: Arc<Charts>,
        target: Arc<dyn BackupTarget>,
        settings: Settings,
        skip_repository: SkipRepository,
    ) -> Self {
        Self {
            jobs: Jobs::new(registry.storage().clone()),
            registry,
            charts,
            target,
            settings,
            skip_repository,
            holder: lease::holder_name(),
            running: Mutex::default(),
        }
    }

    pub fn target(&self) -> &Arc<dyn BackupTarget> {
        &self.target
    }

    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

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

    /// Runs a started job to its end: keeps the lease (stopping the job if it is lost), writes
    /// the job record every 2 s and at the end, logs the outcome and releases the lease.
    async fn drive<T, F>(&self, started: Started, work: F) -> anyhow::Result<T>
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
        let jobs = self.jobs.clone();
        let ticker = async move {
            let mut job = ticking;
            let progress = ticking_progress;
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                job.update(progress.view());
                if let Err(e) = jobs.write(&job).await {
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

    /// Takes a snapshot now, in this task; then, with `backup.keep`, deletes the snapshots it
    /// does not keep (in the same job, under the same lease).
    pub async fn backup(&self, started: Started) -> anyhow::Result<SnapshotRecord> {
        let id = started.job.id.clone();
        let started_by = started.job.started_by.clone();
        let started_at = started.job.started_at.clone();
        let progress = started.progress.clone();
        let clock = std::time::Instant::now();
        let (record, pruned) = self
            .drive(started, async {
                let record = run::backup(self, &id, &started_by, &started_at, &progress).await?;
                let pruned = match self.settings.keep {
                    Some(keep) => {
                        let ids = self.snapshot_ids().await?;
                        let kept = keep::kept(&ids, keep);
                        let doomed: Vec<SnapshotId> =
                            ids.into_iter().filter(|id| !kept.contains(id)).collect();
                        if doomed.is_empty() {
                            None
                        } else {
                            Some(prune::delete(self, &doomed, &progress).await?)
                        }
                    }
                    None => None,
                };
                let result = serde_json::json!({"totals": record.totals, "pruned": pruned});
                Ok(((record, pruned), result))
            })
            .await?;
        let t = record.totals;
        tracing::info!(target: "backup", snapshot = %record.id, objects = t.objects, bytes = t.bytes, new_objects = t.new_objects, new_bytes = t.new_bytes, duration_ms = clock.elapsed().as_millis() as u64, started_by = %record.started_by, "backup finished");
        if let Some(pruned) = pruned {
            tracing::info!(target: "backup", snapshots = pruned.snapshots.len(), objects = pruned.objects, bytes = pruned.bytes, "pruned snapshots that backup.keep does not keep");
        }
        Ok(record)
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

    /// A scheduled slot this process claimed: a backup, or a skipped job if another job runs.
    async fn run_scheduled(&self) {
        match self.begin(JobKind::Backup, "schedule", None).await {
            Ok(started) => {
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
                job.finished_at = Some(job.started_at.clone());
                job.error = Some(e.to_string());
                if let Err(e) = self.jobs.write(&job).await {
                    tracing::warn!(target: "backup", error = %e, "could not write the job record");
                }
            }
        }
    }

    /// The next scheduled run, if there is a schedule.
    pub fn next_run(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.settings
            .schedule
            .as_ref()
            .map(|s| schedule::next_slot(s, chrono::Utc::now()))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Starts a backup in the background; answers its job id at once.
    pub async fn start_backup(
        self: &Arc<Self>,
        started_by: &str,
    ) -> Result<SnapshotId, LeaseError> {
        let started = self.begin(JobKind::Backup, started_by, None).await?;
        let id = started.id().clone();
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.backup(started).await;
        });
        Ok(id)
    }

    /// Starts a verify of `record` in the background.
    pub async fn start_verify(
        self: &Arc<Self>,
        started_by: &str,
        record: SnapshotRecord,
    ) -> Result<SnapshotId, LeaseError> {
        let started = self
            .begin(JobKind::Verify, started_by, Some(record.id.clone()))
            .await?;
        let id = started.id().clone();
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.verify(started, &record).await;
        });
        Ok(id)
    }

    /// Starts a restore of `record` in the background.
    pub async fn start_restore(
        self: &Arc<Self>,
        started_by: &str,
        record: SnapshotRecord,
        options: RestoreOptions,
    ) -> Result<SnapshotId, LeaseError> {
        let started = self
            .begin(JobKind::Restore, started_by, Some(record.id.clone()))
            .await?;
        let id = started.id().clone();
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.restore(started, &record, options).await;
        });
        Ok(id)
    }

    /// Starts deleting a snapshot in the background.
    pub async fn start_delete(
        self: &Arc<Self>,
        started_by: &str,
        snapshot: SnapshotId,
    ) -> Result<SnapshotId, LeaseError> {
        let started = self
            .begin(JobKind::Delete, started_by, Some(snapshot.clone()))
            .await?;
        let id = started.id().clone();
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.delete(started, vec![snapshot]).await;
        });
        Ok(id)
    }

    /// Checks every object of a snapshot.
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
                anyhow::ensure!(
                    findings.is_clean(),
                    "snapshot {} is damaged: {} object(s) missing, {} damaged",
                    record.id,
                    findings.missing.len(),
                    findings.damaged.len()
                );
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
                let result = serde_json::to_value(&plan).expect("serializes");
                Ok((plan, result))
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

    /// Every complete snapshot's record, oldest first.
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
        let Some(lease) = lease::current(self.registry.storage().as_ref()).await? else {
            return Ok(None);
        };
        match SnapshotId::parse(&lease.job) {
            Some(id) => self.job(&id).await,
            None => Ok(None),
        }
    }
}
