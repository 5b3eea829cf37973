//! Garbage collection, online: what no tag reaches any more goes, while the registry keeps
//! serving and accepting pushes, on every backend and with any number of replicas.
//!
//! A run lists the registry (`inventory`), marks what tags reach (`mark`), and moves the rest
//! into its trash (`sweep`), which a later run empties once it is older than `gc.delay`.
//! Nothing written within `gc.delay` is collected, so a push under way keeps its blobs; and
//! a push that relied on something collected anyway (a blob acknowledged just before the
//! mark, whose manifest comes after) gets it back from the trash (`registry::trash`). One run
//! at a time, across replicas, under the lease backups use.

pub mod commands;
pub(crate) mod inventory;
pub(crate) mod mark;
mod retention;
pub mod service;
mod sweep;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use oci_storage_config::GcConfig;
use serde::Serialize;

use crate::lease::{Lease, LeaseError};
use crate::progress::Progress;
use crate::registry::Registry;

/// How far before a run's start its recheck looks for pushes (clock differences).
const RECHECK_MARGIN: Duration = Duration::from_secs(300);

/// Run ids: `YYYYMMDDTHHMMSS.mmmZ-xxxxxx`, the start time first, so they sort by it.
pub mod run_id {
    use std::time::SystemTime;

    pub fn new() -> String {
        format!(
            "{}-{:06x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            rand::random::<u32>() & 0xff_ffff
        )
    }

    /// When the run `id` began.
    pub fn started(id: &str) -> Option<SystemTime> {
        let stamp = id.split('-').next()?.strip_suffix('Z')?;
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3f")
            .ok()
            .map(|t| t.and_utc().into())
    }
}

/// GC behaviour (from `gc`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub delay: Duration,
    pub untagged: bool,
    pub lease_ttl: Duration,
    pub retention: Vec<oci_storage_config::RetentionPolicy>,
}

impl From<&GcConfig> for Settings {
    fn from(c: &GcConfig) -> Self {
        Self {
            delay: c.delay.get(),
            untagged: c.untagged,
            lease_ttl: c.lease_seconds.get(),
            retention: c.retention.clone(),
        }
    }
}

/// Tags named in a report's `retentionSample`, at most.
const RETENTION_SAMPLE: usize = 100;

/// What a run found and did (or, dry, would do). Also the REST API's view of it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, poem_openapi::Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct Report {
    pub id: String,
    pub dry_run: bool,
    /// Tags deleted by `gc.retention` (or, dry, that would be).
    pub retention_tags: u64,
    /// The first of them, as `repository:tag`.
    pub retention_sample: Vec<String>,
    pub repositories: usize,
    pub kept_manifests: usize,
    pub kept_content: usize,
    /// Manifest revisions taken away (no tag reaches them; with `gc.untagged`).
    pub manifests: u64,
    pub referrers: u64,
    pub blob_links: u64,
    /// Content moved to the trash: freed once a later run empties it.
    pub content_objects: u64,
    pub content_bytes: u64,
    /// Planned, but written again while the run went on: kept.
    pub rewritten: u64,
    /// Put back after the sweep for manifests pushed while the run went on.
    pub rescued: u64,
    /// Put back before the sweep: what kept manifests need and an earlier run took away.
    pub healed: u64,
    /// Trash of earlier runs emptied: the bytes freed now.
    pub trash_objects: u64,
    pub trash_bytes: u64,
    pub uploads_expired: u64,
    pub duration_ms: u64,
}

/// A run that has begun (holding the job lease unless dry).
#[derive(Debug)]
pub struct Started {
    pub id: String,
    pub dry_run: bool,
    lease: Option<Lease>,
    pub progress: Arc<Progress>,
}

/// Runs garbage collection for a registry.
#[derive(Debug, Clone)]
pub struct Collector {
    registry: Registry,
    settings: Settings,
    /// Told of tags retention deletes (their chart metadata goes with them).
    charts: Option<Arc<crate::charts::Charts>>,
}

impl Collector {
    pub fn new(
        registry: Registry,
        settings: Settings,
        charts: Option<Arc<crate::charts::Charts>>,
    ) -> Self {
        Self {
            registry,
            settings,
            charts,
        }
    }

    /// Starts a run: a real one takes the job lease (or says who holds it); a dry run
    /// changes nothing and needs none.
    pub async fn begin(&self, dry_run: bool) -> Result<Started, LeaseError> {
        let id = run_id::new();
        let lease = if dry_run {
            None
        } else {
            Some(
                Lease::acquire(
                    self.registry.storage().clone(),
                    &crate::lease::holder_name(),
                    "gc",
                    &id,
                    self.settings.lease_ttl,
                )
                .await?,
            )
        };
        Ok(Started {
            id,
            dry_run,
            lease,
            progress: Arc::default(),
        })
    }

    /// Gives up a run that has begun but will not be driven (its lease is released).
    pub async fn abandon(&self, started: Started) {
        if let Some(lease) = started.lease {
            lease.release().await;
        }
    }

    /// Runs a started run to its end, keeping its lease (and stopping if it is lost); logs
    /// one line when it ends and sets the metrics.
    pub async fn drive(&self, started: Started) -> anyhow::Result<Report> {
        let Started {
            id,
            dry_run,
            lease,
            progress,
        } = started;
        let clock = Instant::now();
        let outcome = match lease {
            None => self.work(&id, true, &progress).await,
            Some(mut lease) => {
                let outcome = tokio::select! {
                    done = self.work(&id, false, &progress) => done,
                    lost = lease.keep() => Err(anyhow::anyhow!("stopped: {lost}")),
                };
                lease.release().await;
                outcome
            }
        };
        let metrics = crate::metrics::get();
        match outcome {
            Ok(mut report) => {
                report.duration_ms = clock.elapsed().as_millis() as u64;
                if !dry_run {
                    metrics.gc_ran(clock.elapsed(), Some(&report));
                }
                tracing::info!(target: "gc", run = %report.id, dry_run, repositories = report.repositories, manifests = report.manifests, blob_links = report.blob_links, referrers = report.referrers, content_objects = report.content_objects, content_bytes = report.content_bytes, trash_bytes = report.trash_bytes, uploads_expired = report.uploads_expired, rewritten = report.rewritten, rescued = report.rescued, duration_ms = report.duration_ms, "garbage collection finished");
                Ok(report)
            }
            Err(e) => {
                if !dry_run {
                    metrics.gc_ran(clock.elapsed(), None);
                }
                tracing::error!(target: "gc", run = %id, error = %format!("{e:#}"), "garbage collection failed");
                Err(e)
            }
        }
    }

    async fn work(&self, id: &str, dry_run: bool, progress: &Progress) -> anyhow::Result<Report> {
        let marked_at = SystemTime::now();
        let cutoff = marked_at - self.settings.delay;
        progress.set_phase("inventory");
        let mut inventory = inventory::Inventory::read(&self.registry).await?;
        let doomed = self
            .apply_retention(&mut inventory, dry_run, progress)
            .await?;
        let policies = &self.settings.retention;
        let untagged = |repo: &str| -> Option<SystemTime> {
            match retention::policy_for(policies, repo).and_then(|p| p.untagged_older_than) {
                Some(age) => Some(marked_at - age),
                None => self.settings.untagged.then_some(cutoff),
            }
        };
        let plan = mark::plan(&self.registry, &inventory, cutoff, &untagged, progress).await?;
        // The plan holds what the sweep needs; the listing is not kept through the sweep and
        // the recheck's own listing.
        drop(inventory);
        let mut report = Report {
            id: id.to_owned(),
            dry_run,
            retention_tags: doomed.len() as u64,
            retention_sample: doomed
                .iter()
                .take(RETENTION_SAMPLE)
                .map(|d| format!("{}:{}", d.repository, d.tag))
                .collect(),
            repositories: plan.repositories,
            kept_manifests: plan.kept_manifests,
            kept_content: plan.kept_content,
            manifests: plan.manifests.len() as u64,
            referrers: plan.referrers.len() as u64,
            blob_links: plan.blob_links.len() as u64,
            content_objects: plan.content.len() as u64,
            content_bytes: plan.content_bytes(),
            rewritten: 0,
            rescued: 0,
            healed: 0,
            trash_objects: 0,
            trash_bytes: 0,
            uploads_expired: 0,
            duration_ms: 0,
        };
        report.healed = sweep::heal(&self.registry, &plan.wanted, dry_run).await?;
        if dry_run {
            return Ok(report);
        }
        // What pushes made during the run need is put back even if the sweep fails midway.
        let swept = sweep::sweep(&self.registry, id, plan, cutoff, progress).await;
        // Pushes since the mark (with room for clocks that differ between this process and
        // the store's timestamps).
        let since = cutoff.max(marked_at - RECHECK_MARGIN);
        let rescued = sweep::rescue(&self.registry, since, progress).await;
        let swept = swept?;
        report.rescued = rescued?;
        report.manifests = swept.manifests;
        report.referrers = swept.referrers;
        report.blob_links = swept.blob_links;
        report.content_objects = swept.content_objects;
        report.content_bytes = swept.content_bytes;
        report.rewritten = swept.rewritten;
        let emptied = sweep::empty_trash(&self.registry, cutoff, progress).await?;
        report.trash_objects = emptied.objects;
        report.trash_bytes = emptied.bytes;
        progress.set_phase("uploads");
        report.uploads_expired = self.registry.expire_uploads().await? as u64;
        Ok(report)
    }
}

impl Collector {
    /// Deletes the tags `gc.retention` does not keep (a dry run only lists them), and takes
    /// them out of `inventory`, so that the mark sees the registry as it is after.
    async fn apply_retention(
        &self,
        inventory: &mut inventory::Inventory,
        dry_run: bool,
        progress: &Progress,
    ) -> anyhow::Result<Vec<retention::Doomed>> {
        let registry = &self.registry;
        let immutable = |tag: &str| {
            crate::registry::Tag::parse(tag).is_some_and(|t| registry.settings().is_immutable(&t))
        };
        let cutoff = SystemTime::now() - self.settings.delay;
        let mut doomed =
            retention::doomed_tags(&self.settings.retention, inventory, &immutable, cutoff);
        if !dry_run && !doomed.is_empty() {
            progress.set_phase("retention");
            progress.set_totals(doomed.len() as u64, 0);
            let mut kept = Vec::new();
            for d in &doomed {
                let (Some(repo), Some(tag)) = (
                    crate::registry::RepoName::parse(&d.repository),
                    crate::registry::Tag::parse(&d.tag),
                ) else {
                    continue;
                };
                if registry
                    .expire_tag(&repo, &tag, d.object.version.as_deref(), d.object.modified)
                    .await?
                {
                    if let Some(charts) = &self.charts {
                        charts.tag_deleted(&repo, &tag).await;
                    }
                } else {
                    kept.push(d.object.key.clone());
                }
                progress.add_object();
            }
            doomed.retain(|d| !kept.contains(&d.object.key));
        }
        for d in &doomed {
            if let Some(links) = inventory.repositories.get_mut(&d.repository) {
                links.tags.retain(|t| t.key != d.object.key);
            }
        }
        Ok(doomed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_carry_their_start() {
        let before = SystemTime::now() - Duration::from_millis(1);
        let id = run_id::new();
        let started = run_id::started(&id).unwrap();
        assert!(started >= before && started <= SystemTime::now(), "{id}");
        assert!(run_id::started("nonsense").is_none());
    }
}
