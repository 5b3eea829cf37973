//! Backups: snapshots of the registry in a [`BackupTarget`], restores from them, and checks of
//! them (docs/design/backup.md). [`BackupService`] is what the CLI, the REST API and the web
//! page call: `driver` runs each job under the one lease (`lease`), records its progress
//! (`jobs`) and logs one line when it ends; `actions` are the jobs; `snapshots` reads them.

mod actions;
pub mod commands;
mod driver;
pub mod format;
pub mod jobs;
mod keep;
mod objects;
pub mod prune;
pub mod restore;
mod run;
pub mod schedule;
mod snapshots;
pub mod verify;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_storage_core::{BackupTarget, StorageExt};

use crate::charts::Charts;
use crate::progress::Progress;
use crate::registry::{Registry, RepoName, layout};
pub use driver::{JobFailure, Started};
use format::SnapshotId;
use jobs::Jobs;
pub use prune::Pruned;
pub use restore::{Plan, RestoreOptions};
pub use snapshots::{SnapshotError, SnapshotSummary};
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
    /// This registry's id (`system/registry-id.json`), which marks the target it backs up to.
    registry_id: tokio::sync::OnceCell<String>,
    /// Summaries of the snapshots last listed (records never change once written).
    summaries: snapshots::SummaryCache,
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

/// How long the target may take to answer a reachability check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

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
            holder: crate::lease::holder_name(),
            running: Mutex::default(),
            registry_id: tokio::sync::OnceCell::new(),
            summaries: snapshots::SummaryCache::default(),
        }
    }

    pub fn target(&self) -> &Arc<dyn BackupTarget> {
        &self.target
    }

    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The next scheduled run, if there is a schedule.
    pub fn next_run(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.settings
            .schedule
            .as_ref()
            .map(|s| crate::schedule::next_slot(s, chrono::Utc::now()))
    }

    /// Whether the target answers, in plain words when it does not (unreachable, denied).
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.target.check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{} cannot be used: {e}", self.target.describe())),
            Err(_) => Err(format!(
                "{} did not answer within {} s",
                self.target.describe(),
                CHECK_TIMEOUT.as_secs()
            )),
        }
    }

    /// This registry's id, made on first use and shared by its replicas: a target records the
    /// registry it holds backups of, so that two registries never prune each other's.
    pub async fn registry_id(&self) -> anyhow::Result<&str> {
        let id = self
            .registry_id
            .get_or_try_init(|| async {
                let bytes = self
                    .registry
                    .storage()
                    .get_or_create(&layout::registry_id(), 4096, || {
                        let id = format!("{:032x}", rand::random::<u128>());
                        Ok(serde_json::to_vec(&serde_json::json!({ "id": id }))
                            .expect("serializes")
                            .into())
                    })
                    .await?;
                let value: serde_json::Value = serde_json::from_slice(&bytes)?;
                value["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow::anyhow!("system/registry-id.json holds no id"))
            })
            .await?;
        Ok(id)
    }
}
