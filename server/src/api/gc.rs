//! `/api/v1/gc…`: garbage collection for administrators (with a password, as every
//! administrative operation): its settings and runs, start one (or a dry run), follow it.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::problem::ApiError;
use super::security::{ApiUser, require_admin};
use crate::gc::Report;
use crate::gc::service::{RunRecord, Running};
use crate::lease::LeaseError;
use crate::state::AppState;

/// A run: running (with its counters) or ended (with its report or error).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct GcRun {
    pub id: String,
    pub dry_run: bool,
    /// A user, `cli:<user>@<host>`, or `schedule`.
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    pub error: Option<String>,
    /// While running: `inventory`, `mark`, `sweep`, `recheck`, `empty trash`, `uploads`.
    pub phase: Option<String>,
    pub objects_done: Option<u64>,
    pub objects_total: Option<u64>,
    pub report: Option<Report>,
    /// For a scheduled run: its slot.
    pub slot: Option<String>,
}

impl From<RunRecord> for GcRun {
    fn from(r: RunRecord) -> Self {
        Self {
            id: r.id,
            dry_run: r.dry_run,
            started_by: r.started_by,
            started_at: r.started_at,
            finished_at: r.finished_at,
            state: r.state,
            error: r.error,
            phase: None,
            objects_done: None,
            objects_total: None,
            report: r.report,
            slot: r.slot,
        }
    }
}

impl From<Running> for GcRun {
    fn from(r: Running) -> Self {
        let view = r.view();
        Self {
            phase: Some(view.phase.to_owned()),
            objects_done: Some(view.objects.done),
            objects_total: view.objects.total,
            ..r.record.into()
        }
    }
}

/// Garbage collection as configured, and its runs.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct GcStatus {
    /// `gc.schedule`, if any.
    pub schedule: Option<String>,
    pub next_run: Option<String>,
    /// `gc.delay`: nothing younger is collected; what is collected is deleted this long after.
    pub delay: String,
    /// `gc.untagged`: whether manifests no tag reaches are collected.
    pub untagged: bool,
    /// The maintenance job holding the lease now (a run or a backup job, on any replica),
    /// as `<kind> <id> on <holder>`.
    pub busy: Option<String>,
    /// Newest first (the run going on in this process first); at most 20.
    pub runs: Vec<GcRun>,
}

/// A run was started.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct GcStarted {
    pub run_id: String,
    /// Where to follow it.
    pub status: String,
}

#[derive(Debug, ApiResponse)]
pub enum Accepted {
    /// The run goes on; follow it at `Location`.
    #[oai(status = 202)]
    Accepted(Json<GcStarted>, #[oai(header = "Location")] String),
}

/// The garbage collection API.
#[derive(Debug)]
pub struct GcApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Gc")]
impl GcApi {
    /// Garbage collection status
    ///
    /// Settings, the job holding the lease (if any), and the latest runs of every replica.
    #[oai(path = "/gc", method = "get", operation_id = "gcStatus")]
    async fn status(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<Json<GcStatus>, ApiError> {
        require_admin(state, &principal, "see garbage collection")?;
        let gc = &state.gc;
        let busy = gc
            .lease_holder()
            .await
            .map_err(|e| ApiError::internal("reading the job lease", e))?
            .map(|l| format!("{} {} on {}", l.kind, l.job, l.holder));
        let runs = gc
            .runs(20)
            .await
            .map_err(|e| ApiError::internal("listing garbage collection runs", e))?;
        let running = gc.running();
        Ok(Json(GcStatus {
            schedule: gc.schedule().cloned().map(String::from),
            next_run: gc.next_run().map(|t| t.to_rfc3339()),
            delay: humantime::format_duration(gc.settings().delay).to_string(),
            untagged: gc.settings().untagged,
            busy,
            runs: runs
                .into_iter()
                .map(|r| match &running {
                    Some(here) if here.record.id == r.id => here.clone().into(),
                    _ => r.into(),
                })
                .collect(),
        }))
    }

    /// Collect garbage now
    ///
    /// Starts a run (or, with `?dryRun=true`, a run that only says what it would collect);
    /// 409 while another run or a backup job holds the lease.
    #[oai(path = "/gc", method = "post", operation_id = "startGc")]
    async fn start(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        /// Only say what would be collected.
        #[oai(name = "dryRun")]
        dry_run: Query<Option<bool>>,
    ) -> Result<Accepted, ApiError> {
        require_admin(state, &principal, "collect garbage")?;
        let dry_run = dry_run.0.unwrap_or(false);
        let id = state
            .gc
            .start(dry_run, &principal.identity.username)
            .await
            .map_err(|e| match e {
                LeaseError::Busy { .. } => ApiError::conflict(e.to_string()),
                other => ApiError::internal("starting garbage collection", other),
            })?;
        let status = format!("/api/v1/gc/runs/{id}");
        Ok(Accepted::Accepted(
            Json(GcStarted {
                run_id: id,
                status: status.clone(),
            }),
            status,
        ))
    }

    /// Show a run
    #[oai(path = "/gc/runs/:id", method = "get", operation_id = "getGcRun")]
    async fn run(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<Json<GcRun>, ApiError> {
        require_admin(state, &principal, "see garbage collection")?;
        if let Some(running) = state.gc.running().filter(|r| r.record.id == id.0) {
            return Ok(Json(running.into()));
        }
        state
            .gc
            .run(&id.0)
            .await
            .map_err(|e| ApiError::internal("reading a garbage collection run", e))?
            .map(|r| Json(r.into()))
            .ok_or_else(|| ApiError::not_found(format!("no run {:?}", id.0)))
    }
}
