//! `/api/v1/backups/…`: start backups, follow jobs, list, show, verify, restore and delete
//! snapshots (administrators, with a password: API tokens are refused, as for every
//! administrative operation). Jobs run in the background under the one job lease; a second
//! job while one runs gets 409 naming it.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::problem::ApiError;
use super::security::{ApiUser, require_admin};
use crate::backup::format::{SnapshotId, SnapshotRecord};
use crate::backup::jobs::Job;
use crate::backup::{BackupService, RestoreOptions, SnapshotError, SnapshotSummary, Which};
use crate::lease::LeaseError;
use crate::state::AppState;

/// A job's progress and outcome.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct JobView {
    /// Also the id of the snapshot a backup job writes.
    pub id: String,
    /// backup, restore, verify or delete.
    pub kind: String,
    /// running, succeeded, failed, interrupted (its process died) or skipped.
    pub state: String,
    /// What it is doing: inventory, cut, copy, record, content, repositories, sweep…
    pub phase: String,
    /// A user, `schedule`, or `cli:<user>@<host>`.
    pub started_by: String,
    /// The process that runs it: `<host>/<pid>/<random>`.
    pub holder: String,
    /// For a scheduled job: the slot it runs.
    pub slot: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The snapshot written (backup) or read (restore, verify, delete).
    pub snapshot: Option<String>,
    pub objects_done: u64,
    /// Unknown until the job has counted.
    pub objects_total: Option<u64>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// Over the last 10 seconds.
    pub bytes_per_second: Option<u64>,
    pub eta_seconds: Option<u64>,
    pub error: Option<String>,
    /// The outcome: a backup's totals, a verify's findings, a restore's changes.
    pub result: Option<serde_json::Value>,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        Self {
            id: job.id.to_string(),
            kind: job.kind.as_str().into(),
            state: job.state.as_str().into(),
            phase: job.phase,
            started_by: job.started_by,
            holder: job.holder,
            slot: job.slot,
            started_at: job.started_at,
            finished_at: job.finished_at,
            snapshot: job.snapshot.map(|s| s.to_string()),
            objects_done: job.objects.done,
            objects_total: job.objects.total,
            bytes_done: job.bytes.done,
            bytes_total: job.bytes.total,
            bytes_per_second: job.bytes_per_second,
            eta_seconds: job.eta_seconds,
            error: job.error,
            result: job.result,
        }
    }
}

/// A snapshot, without its repository list.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SnapshotView {
    pub id: String,
    pub started_at: String,
    pub completed_at: String,
    /// When the cut of the registry began and ended: the snapshot holds every tag written
    /// before the first, and none written after the second.
    pub cut_started_at: String,
    pub cut_ended_at: String,
    pub started_by: String,
    /// The registry storage it was taken from.
    pub source: String,
    pub repositories: u64,
    /// Distinct content objects (blobs and manifests) and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// What its backup uploaded.
    pub new_objects: u64,
    pub new_bytes: u64,
    /// The repositories (only when one snapshot is asked for).
    #[oai(skip_serializing_if_is_none)]
    pub repository_list: Option<Vec<SnapshotRepository>>,
}

/// A repository in a snapshot.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SnapshotRepository {
    pub name: String,
    pub tags: u64,
    pub manifests: u64,
    pub blobs: u64,
    pub bytes: u64,
}

impl SnapshotView {
    fn of_summary(s: &SnapshotSummary) -> Self {
        let t = s.totals;
        Self {
            id: s.id.to_string(),
            started_at: s.started_at.clone(),
            completed_at: s.completed_at.clone(),
            cut_started_at: s.cut_started_at.clone(),
            cut_ended_at: s.cut_ended_at.clone(),
            started_by: s.started_by.clone(),
            source: s.source.clone(),
            repositories: s.repositories as u64,
            objects: t.objects,
            bytes: t.bytes,
            new_objects: t.new_objects,
            new_bytes: t.new_bytes,
            repository_list: None,
        }
    }

    fn of_record(record: SnapshotRecord) -> Self {
        let mut view = Self::of_summary(&SnapshotSummary::from(&record));
        view.repository_list = Some(
            record
                .repositories
                .into_iter()
                .map(|r| SnapshotRepository {
                    name: r.name,
                    tags: r.tags as u64,
                    manifests: r.manifests as u64,
                    blobs: r.blobs as u64,
                    bytes: r.bytes,
                })
                .collect(),
        );
        view
    }
}

/// Backups as configured, and what runs now.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Where snapshots go (`s3:bucket/prefix/`).
    pub target: String,
    /// `backup.schedule`, if any.
    pub schedule: Option<String>,
    pub next_run: Option<String>,
    /// `backup.keep`, if any: `{last, daily, weekly}`.
    pub keep: Option<serde_json::Value>,
    /// The job running now, on any replica.
    pub running: Option<JobView>,
    /// Whether the target answered just now.
    pub last_check: TargetCheck,
}

/// A reachability check of the target.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TargetCheck {
    pub ok: bool,
    /// Why not, in the store's words (unreachable, denied…).
    pub error: Option<String>,
}

/// A job was started.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct JobStarted {
    pub job_id: String,
    /// Where to follow it.
    pub status: String,
}

#[derive(Debug, ApiResponse)]
pub enum Accepted {
    /// The job runs; follow it at `Location`.
    #[oai(status = 202)]
    Accepted(Json<JobStarted>, #[oai(header = "Location")] String),
}

/// A restore request.
#[derive(Debug, Default, Object)]
#[oai(rename_all = "camelCase")]
pub struct RestoreRequest {
    /// Also move tags that changed after the snapshot (immutable tags never move).
    #[oai(default)]
    pub overwrite: bool,
    /// Answer what would change, change nothing.
    #[oai(default)]
    pub dry_run: bool,
}

/// A tag that differs between the registry and the snapshot.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TagChangeView {
    pub repository: String,
    pub tag: String,
    pub from: String,
    pub to: String,
}

/// What a restore changes (nothing is ever deleted).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RestorePlan {
    pub snapshot: String,
    pub repositories_created: u64,
    pub repositories_merged: u64,
    pub tags_added: u64,
    pub tags_unchanged: u64,
    pub tags_moved: Vec<TagChangeView>,
    /// Changed after the snapshot: kept unless `overwrite`.
    pub tags_kept_newer: Vec<TagChangeView>,
    /// Immutable: never moved.
    pub tags_kept_immutable: Vec<TagChangeView>,
    pub content_objects: u64,
    pub content_bytes: u64,
    /// `restore`: the snapshot's API tokens are restored; `keep`: the registry has its own.
    pub api_tokens: String,
}

impl From<crate::backup::Plan> for RestorePlan {
    fn from(p: crate::backup::Plan) -> Self {
        let changes = |v: Vec<crate::backup::restore::TagChange>| {
            v.into_iter()
                .map(|c| TagChangeView {
                    repository: c.repository,
                    tag: c.tag,
                    from: c.from.to_string(),
                    to: c.to.to_string(),
                })
                .collect()
        };
        Self {
            snapshot: p.snapshot,
            repositories_created: p.repositories_created as u64,
            repositories_merged: p.repositories_merged as u64,
            tags_added: p.tags_added as u64,
            tags_unchanged: p.tags_unchanged as u64,
            tags_moved: changes(p.tags_moved),
            tags_kept_newer: changes(p.tags_kept_newer),
            tags_kept_immutable: changes(p.tags_kept_immutable),
            content_objects: p.content_objects,
            content_bytes: p.content_bytes,
            api_tokens: p.api_tokens.as_str().into(),
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum RestoreAnswer {
    /// The dry run's plan.
    #[oai(status = 200)]
    Plan(Json<RestorePlan>),
    /// The restore runs; follow it at `Location`.
    #[oai(status = 202)]
    Accepted(Json<JobStarted>, #[oai(header = "Location")] String),
}

fn service(state: &AppState) -> Result<&Arc<BackupService>, ApiError> {
    state
        .backup
        .as_ref()
        .ok_or_else(|| ApiError::not_found("backups are not enabled (backup.enabled)"))
}

fn started(id: SnapshotId) -> Accepted {
    let status = format!("/api/v1/backups/jobs/{id}");
    Accepted::Accepted(
        Json(JobStarted {
            job_id: id.to_string(),
            status: status.clone(),
        }),
        status,
    )
}

fn busy(e: LeaseError) -> ApiError {
    match e {
        LeaseError::Busy { .. } => ApiError::conflict(e.to_string()),
        other => ApiError::internal("starting a backup job", other),
    }
}

fn parse_id(id: &str) -> Result<SnapshotId, ApiError> {
    SnapshotId::parse(id).ok_or_else(|| ApiError::not_found(format!("no snapshot or job {id:?}")))
}

async fn snapshot(service: &BackupService, which: &str) -> Result<SnapshotRecord, ApiError> {
    let which: Which = which.parse().map_err(ApiError::not_found)?;
    service.snapshot(&which).await.map_err(|e| match e {
        SnapshotError::NotFound(_) | SnapshotError::NoneYet => ApiError::not_found(e.to_string()),
        SnapshotError::Other(e) => ApiError::unavailable(format!("{e:#}")),
    })
}

/// The backups API.
#[derive(Debug)]
pub struct BackupsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Backups")]
impl BackupsApi {
    /// Backup status
    ///
    /// The target, the schedule and its next run, and the job running now (on any replica).
    #[oai(path = "/backups", method = "get", operation_id = "backupStatus")]
    async fn status(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<Json<BackupStatus>, ApiError> {
        require_admin(state, &principal, "see backups")?;
        let service = service(state)?;
        let running = service
            .running_job()
            .await
            .map_err(|e| ApiError::internal("reading the running job", e))?;
        let settings = service.settings();
        Ok(Json(BackupStatus {
            target: service.target().describe(),
            schedule: settings.schedule.clone().map(String::from),
            next_run: service.next_run().map(|t| t.to_rfc3339()),
            keep: settings
                .keep
                .map(|k| serde_json::to_value(k).expect("serializes")),
            running: running.map(JobView::from),
            last_check: match service.check().await {
                Ok(()) => TargetCheck {
                    ok: true,
                    error: None,
                },
                Err(e) => TargetCheck {
                    ok: false,
                    error: Some(e),
                },
            },
        }))
    }

    /// Back up now
    ///
    /// Starts a snapshot of the registry; 409 if another backup, restore, verify or delete
    /// job runs.
    #[oai(path = "/backups", method = "post", operation_id = "startBackup")]
    async fn start(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<Accepted, ApiError> {
        require_admin(state, &principal, "start backups")?;
        let id = service(state)?
            .start_backup(&principal.identity.username)
            .await
            .map_err(busy)?;
        Ok(started(id))
    }

    /// List jobs
    ///
    /// The newest first: backups, restores, verifies and deletes, running or ended.
    #[oai(
        path = "/backups/jobs",
        method = "get",
        operation_id = "listBackupJobs"
    )]
    async fn jobs(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        /// At most this many (1-100, default 20).
        limit: Query<Option<u32>>,
    ) -> Result<Json<Vec<JobView>>, ApiError> {
        require_admin(state, &principal, "see backups")?;
        let limit = limit.0.unwrap_or(20).clamp(1, 100) as usize;
        let jobs = service(state)?
            .jobs_with_progress(limit)
            .await
            .map_err(|e| ApiError::internal("listing backup jobs", e))?;
        Ok(Json(jobs.into_iter().map(JobView::from).collect()))
    }

    /// Show a job
    #[oai(
        path = "/backups/jobs/:id",
        method = "get",
        operation_id = "getBackupJob"
    )]
    async fn job(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<Json<JobView>, ApiError> {
        require_admin(state, &principal, "see backups")?;
        let id = parse_id(&id.0)?;
        service(state)?
            .job(&id)
            .await
            .map_err(|e| ApiError::internal("reading a backup job", e))?
            .map(|job| Json(job.into()))
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
    }

    /// List snapshots
    ///
    /// Complete snapshots, oldest first.
    #[oai(
        path = "/backups/snapshots",
        method = "get",
        operation_id = "listSnapshots"
    )]
    async fn snapshots(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<Json<Vec<SnapshotView>>, ApiError> {
        require_admin(state, &principal, "see backups")?;
        let summaries = service(state)?
            .summaries()
            .await
            .map_err(|e| ApiError::unavailable(format!("{e:#}")))?;
        Ok(Json(
            summaries
                .iter()
                .map(|s| SnapshotView::of_summary(s))
                .collect(),
        ))
    }

    /// Show a snapshot
    ///
    /// By id, or `latest`; with its repositories.
    #[oai(
        path = "/backups/snapshots/:id",
        method = "get",
        operation_id = "getSnapshot"
    )]
    async fn snapshot(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<Json<SnapshotView>, ApiError> {
        require_admin(state, &principal, "see backups")?;
        let record = snapshot(service(state)?, &id.0).await?;
        Ok(Json(SnapshotView::of_record(record)))
    }

    /// Delete a snapshot
    ///
    /// Deletes its record, then the objects no other snapshot needs.
    #[oai(
        path = "/backups/snapshots/:id",
        method = "delete",
        operation_id = "deleteSnapshot"
    )]
    async fn delete(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<Accepted, ApiError> {
        require_admin(state, &principal, "delete snapshots")?;
        let service = service(state)?;
        let record = snapshot(service, &id.0).await?;
        let job = service
            .start_delete(&principal.identity.username, record.id)
            .await
            .map_err(busy)?;
        Ok(started(job))
    }

    /// Verify a snapshot
    ///
    /// Reads every object back and checks its digest; the findings are the job's result.
    #[oai(
        path = "/backups/snapshots/:id/verify",
        method = "post",
        operation_id = "verifySnapshot"
    )]
    async fn verify(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<Accepted, ApiError> {
        require_admin(state, &principal, "verify snapshots")?;
        let service = service(state)?;
        let record = snapshot(service, &id.0).await?;
        let job = service
            .start_verify(&principal.identity.username, record)
            .await
            .map_err(busy)?;
        Ok(started(job))
    }

    /// Restore a snapshot
    ///
    /// Merges the snapshot into this registry: nothing is deleted, tags changed after the
    /// snapshot are kept unless `overwrite`, immutable tags never move. `dryRun` answers what
    /// would change.
    #[oai(
        path = "/backups/snapshots/:id/restore",
        method = "post",
        operation_id = "restoreSnapshot"
    )]
    async fn restore(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
        body: Json<RestoreRequest>,
    ) -> Result<RestoreAnswer, ApiError> {
        require_admin(state, &principal, "restore snapshots")?;
        let service = service(state)?;
        let record = snapshot(service, &id.0).await?;
        let options = RestoreOptions {
            overwrite: body.0.overwrite,
        };
        if body.0.dry_run {
            let plan = service
                .plan_restore(&record, options)
                .await
                .map_err(|e| ApiError::unavailable(format!("{e:#}")))?;
            return Ok(RestoreAnswer::Plan(Json(plan.into())));
        }
        let job = service
            .start_restore(&principal.identity.username, record, options)
            .await
            .map_err(busy)?;
        let Accepted::Accepted(body, location) = started(job);
        Ok(RestoreAnswer::Accepted(body, location))
    }
}
