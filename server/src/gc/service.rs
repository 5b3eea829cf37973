//! What the CLI, the REST API, the web page and the schedule call: starts runs (in the
//! background or in this task), shows the one running here, and keeps a record of every run
//! in storage (`system/gc/runs/<id>.json`, the newest 100), so every replica shows the same
//! history.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use oci_storage_config::Schedule;
use oci_storage_core::{PutMode, StorageError, StorageExt, Within};
use serde::{Deserialize, Serialize};

use super::{Collector, Report, Started};
use crate::lease::{LeaseError, LeaseRecord};
use crate::progress::{Progress, ProgressView};
use crate::registry::{Registry, layout};

/// Run records kept.
const RECORDS_KEPT: usize = 100;
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// A run's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: String,
    pub dry_run: bool,
    /// A user, `cli:<user>@<host>`, or `schedule`.
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    pub error: Option<String>,
    pub report: Option<Report>,
    /// For a scheduled run: its slot (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

/// The run going on in this process.
#[derive(Debug, Clone)]
pub struct Running {
    pub record: RunRecord,
    pub progress: Arc<Progress>,
}

impl Running {
    pub fn view(&self) -> ProgressView {
        self.progress.view()
    }
}

/// Garbage collection as a service of the server (or of a CLI process).
#[derive(Debug)]
pub struct GcService {
    collector: Collector,
    registry: Registry,
    schedule: Option<Schedule>,
    running: Mutex<Option<Running>>,
}

fn now_rfc3339() -> String {
    crate::backup::jobs::now_rfc3339()
}

impl GcService {
    pub fn new(
        registry: Registry,
        config: &oci_storage_config::GcConfig,
        charts: Option<Arc<crate::charts::Charts>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            collector: Collector::new(registry.clone(), super::Settings::from(config), charts),
            registry,
            schedule: config.schedule.clone(),
            running: Mutex::default(),
        })
    }

    pub fn settings(&self) -> &super::Settings {
        &self.collector.settings
    }

    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    pub fn next_run(&self) -> Option<DateTime<Utc>> {
        self.schedule
            .as_ref()
            .map(|s| crate::schedule::next_slot(s, Utc::now()))
    }

    /// The run going on in this process, if any.
    pub fn running(&self) -> Option<Running> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The maintenance job holding the lease now (a run or a backup job, on any replica).
    pub async fn lease_holder(&self) -> Result<Option<LeaseRecord>, StorageError> {
        crate::lease::current(self.registry.storage().as_ref()).await
    }

    async fn begin(
        &self,
        dry_run: bool,
        started_by: &str,
        slot: Option<String>,
    ) -> Result<Started, LeaseError> {
        if let Some(running) = self.running() {
            return Err(LeaseError::Busy {
                job: running.record.id,
                kind: if running.record.dry_run {
                    "gc (dry run)"
                } else {
                    "gc"
                }
                .into(),
                holder: crate::lease::holder_name(),
            });
        }
        let started = self.collector.begin(dry_run).await?;
        let record = RunRecord {
            id: started.id.clone(),
            dry_run,
            started_by: started_by.to_owned(),
            started_at: now_rfc3339(),
            finished_at: None,
            state: "running".into(),
            error: None,
            report: None,
            slot,
        };
        let raced = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            match &*running {
                // Another run began here meanwhile (two dry runs need no lease).
                Some(other) => Some(other.record.id.clone()),
                None => {
                    *running = Some(Running {
                        record,
                        progress: started.progress.clone(),
                    });
                    None
                }
            }
        };
        if let Some(job) = raced {
            self.collector.abandon(started).await;
            return Err(LeaseError::Busy {
                job,
                kind: "gc".into(),
                holder: crate::lease::holder_name(),
            });
        }
        Ok(started)
    }

    async fn finish(&self, started: Started) -> anyhow::Result<Report> {
        let id = started.id.clone();
        let outcome = self.collector.drive(started).await;
        let running = self.running().filter(|r| r.record.id == id);
        if let Some(Running { mut record, .. }) = running {
            record.finished_at = Some(now_rfc3339());
            match &outcome {
                Ok(report) => {
                    record.state = "succeeded".into();
                    record.report = Some(report.clone());
                }
                Err(e) => {
                    record.state = "failed".into();
                    record.error = Some(format!("{e:#}"));
                }
            }
            // The record first: the run is never missing from what readers see.
            if let Err(e) = self.write_record(&record).await {
                tracing::warn!(target: "gc", run = %record.id, error = %e, "could not write the run's record");
            }
            self.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take_if(|r| r.record.id == id);
        }
        outcome
    }

    /// Starts a run in the background; answers its id, or who holds the lease.
    pub async fn start(
        self: &Arc<Self>,
        dry_run: bool,
        started_by: &str,
    ) -> Result<String, LeaseError> {
        let started = self.begin(dry_run, started_by, None).await?;
        let id = started.id.clone();
        let service = self.clone();
        tokio::spawn(async move {
            // The outcome is logged and recorded.
            drop(service.finish(started).await);
        });
        Ok(id)
    }

    /// Runs now, in this task; `progress` is told of the run's counters as it begins.
    pub async fn run_now(
        &self,
        dry_run: bool,
        started_by: &str,
        progress: impl FnOnce(Arc<Progress>),
    ) -> anyhow::Result<Report> {
        self.run_here(dry_run, started_by, None, progress).await
    }

    async fn run_here(
        &self,
        dry_run: bool,
        started_by: &str,
        slot: Option<String>,
        progress: impl FnOnce(Arc<Progress>),
    ) -> anyhow::Result<Report> {
        let started = self
            .begin(dry_run, started_by, slot)
            .await
            .map_err(|e| match e {
                LeaseError::Busy { .. } => anyhow::anyhow!("{e}; try again when it has ended"),
                e => anyhow::anyhow!("{e}"),
            })?;
        progress(started.progress.clone());
        self.finish(started).await
    }

    /// Runs of every replica, newest first (at most `limit`), the one running here first.
    pub async fn runs(&self, limit: usize) -> anyhow::Result<Vec<RunRecord>> {
        let mut ids: Vec<String> = self
            .registry
            .storage()
            .list_all(layout::GC_RUNS_PREFIX)
            .await?
            .into_iter()
            .filter_map(|m| {
                m.key
                    .as_str()
                    .strip_prefix(layout::GC_RUNS_PREFIX)?
                    .strip_suffix(".json")
                    .map(str::to_owned)
            })
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut runs: Vec<RunRecord> = self.running().map(|r| r.record).into_iter().collect();
        let here = runs.first().map(|r| r.id.clone());
        ids.retain(|id| Some(id) != here.as_ref());
        for id in ids.into_iter().take(limit) {
            if let Some(record) = self.record(&id).await? {
                runs.push(record);
            }
        }
        runs.truncate(limit);
        Ok(runs)
    }

    /// One run's record (the running one here included).
    pub async fn run(&self, id: &str) -> anyhow::Result<Option<RunRecord>> {
        if let Some(running) = self.running().filter(|r| r.record.id == id) {
            return Ok(Some(running.record));
        }
        if super::run_id::started(id).is_none() {
            return Ok(None);
        }
        self.record(id).await
    }

    async fn record(&self, id: &str) -> anyhow::Result<Option<RunRecord>> {
        match self
            .registry
            .storage()
            .get_within(&layout::gc_run(id), MAX_RECORD_BYTES)
            .await
        {
            // A record that cannot be read is left out, not an error for the whole history.
            Ok(Within::Read { bytes, .. }) => Ok(serde_json::from_slice(&bytes).ok()),
            Ok(Within::TooLarge) | Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_record(&self, record: &RunRecord) -> anyhow::Result<()> {
        let storage = self.registry.storage();
        let bytes = Bytes::from(serde_json::to_vec(record)?);
        storage
            .put_bytes(&layout::gc_run(&record.id), bytes, PutMode::Overwrite)
            .await?;
        let mut keys: Vec<_> = storage
            .list_all(layout::GC_RUNS_PREFIX)
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        keys.sort_unstable_by(|a, b| b.as_str().cmp(a.as_str()));
        for old in keys.into_iter().skip(RECORDS_KEPT) {
            storage.delete(&old).await?;
        }
        Ok(())
    }
}

/// Runs `gc.schedule`'s collections for as long as the process lives: each slot on one
/// replica (the one that claims it); a slot that finds another job holding the lease is
/// skipped (and logged).
pub fn spawn_scheduled(service: Arc<GcService>) {
    let Some(schedule) = service.schedule.clone() else {
        return;
    };
    tokio::spawn(async move {
        let key = layout::gc_schedule();
        let holder = crate::lease::holder_name();
        loop {
            let slot = crate::schedule::sleep_until_next(&schedule).await;
            let storage = service.registry.storage().clone();
            match crate::schedule::claim(storage.as_ref(), &key, slot, &holder).await {
                Ok(true) => {
                    // The outcome is logged and recorded.
                    let name = slot.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    if let Err(e) = service
                        .run_here(false, "schedule", Some(name), |_| {})
                        .await
                    {
                        tracing::debug!(target: "gc", %slot, error = %format!("{e:#}"), "scheduled collection did not complete");
                    }
                }
                Ok(false) => {
                    tracing::debug!(target: "gc", %slot, "scheduled collection claimed by another process")
                }
                Err(e) => {
                    tracing::warn!(target: "gc", %slot, error = %e, "could not claim a scheduled collection; skipping it")
                }
            }
        }
    });
}
