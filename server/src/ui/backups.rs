//! The backup page (administrators): status, the **Back up now** button, live progress of the
//! running job (app.js polls `/ui/backups/job`), the history of jobs and snapshots with verify,
//! delete and restore, and the restore confirmation that says what will change. Every form
//! carries the session's CSRF token; every change starts a job and answers 303 to the page.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::form::PostedForm;
use super::{html, human_size, is_admin, see_other, see_other_with_notice, session};
use crate::backup::format::{SnapshotId, SnapshotRecord};
use crate::backup::jobs::{Job, JobKind};
use crate::backup::{BackupService, Plan, RestoreOptions, SnapshotSummary, Which};
use crate::state::AppState;

/// One row of the history.
struct HistoryRow {
    /// Job id (a backup's is its snapshot id).
    id: String,
    what: String,
    when: String,
    duration: String,
    /// succeeded, failed, interrupted, skipped, running.
    state: String,
    error: String,
    size: String,
    new_bytes: String,
    objects: String,
    started_by: String,
    /// The snapshot this row offers actions on, if it still exists.
    snapshot: Option<String>,
}

#[derive(Template)]
#[template(path = "backup_history.html")]
struct HistoryFragment {
    csrf: String,
    rows: Vec<HistoryRow>,
}

#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage {
    user: Option<String>,
    csrf: String,
    admin: bool,
    enabled: bool,
    target: String,
    schedule: String,
    next_run: String,
    keep: String,
    /// The job running now (on any replica), as `id`.
    running: Option<String>,
    running_text: String,
    /// What is wrong with the target or the history, in plain words.
    problems: Vec<String>,
    notice: String,
    history: HistoryFragment,
}

#[derive(Template)]
#[template(path = "backup_restore.html")]
struct RestorePage {
    user: Option<String>,
    csrf: String,
    admin: bool,
    snapshot: String,
    overwrite: bool,
    plan: Plan,
    content_size: String,
    moved_shown: Vec<crate::backup::restore::TagChange>,
    moved_more: usize,
    newer_shown: Vec<crate::backup::restore::TagChange>,
    newer_more: usize,
    immutable_shown: Vec<crate::backup::restore::TagChange>,
    immutable_more: usize,
    restores_tokens: bool,
}

fn duration(job: &Job) -> String {
    let (Ok(begun), Some(Ok(ended))) = (
        chrono::DateTime::parse_from_rfc3339(&job.started_at),
        job.finished_at
            .as_deref()
            .map(chrono::DateTime::parse_from_rfc3339),
    ) else {
        return String::new();
    };
    let secs = (ended - begun).num_seconds().max(0);
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

/// The jobs and snapshots as rows, newest first; snapshots without a job record (older than
/// the records kept) are listed too.
fn history_rows(jobs: Vec<Job>, snapshots: &[Arc<SnapshotSummary>]) -> Vec<HistoryRow> {
    let by_id: BTreeMap<&SnapshotId, &SnapshotSummary> =
        snapshots.iter().map(|s| (&s.id, s.as_ref())).collect();
    let mut listed = std::collections::BTreeSet::new();
    let mut rows: Vec<HistoryRow> = Vec::new();
    for job in jobs {
        let snapshot = job.snapshot.as_ref().and_then(|id| by_id.get(id).copied());
        let what = match (job.kind, &job.snapshot) {
            (JobKind::Backup, _) => "Backup".to_owned(),
            (kind, Some(id)) => format!("{} of {id}", capitalized(kind.as_str())),
            (kind, None) => capitalized(kind.as_str()),
        };
        let (size, new_bytes, objects) = match (job.kind, snapshot) {
            (JobKind::Backup, Some(s)) => {
                listed.insert(s.id.clone());
                (
                    human_size(s.totals.bytes),
                    human_size(s.totals.new_bytes),
                    s.totals.objects.to_string(),
                )
            }
            _ => Default::default(),
        };
        rows.push(HistoryRow {
            id: job.id.to_string(),
            what,
            when: readable_time(&job.started_at),
            duration: duration(&job),
            state: job.state.as_str().into(),
            error: job.error.unwrap_or_default(),
            size,
            new_bytes,
            objects,
            started_by: job.started_by,
            snapshot: (job.kind == JobKind::Backup && snapshot.is_some())
                .then(|| job.id.to_string()),
        });
    }
    for s in snapshots.iter().rev().filter(|s| !listed.contains(&s.id)) {
        rows.push(HistoryRow {
            id: s.id.to_string(),
            what: "Backup".into(),
            when: readable_time(&s.started_at),
            duration: String::new(),
            state: "succeeded".into(),
            error: String::new(),
            size: human_size(s.totals.bytes),
            new_bytes: human_size(s.totals.new_bytes),
            objects: s.totals.objects.to_string(),
            started_by: s.started_by.clone(),
            snapshot: Some(s.id.to_string()),
        });
    }
    rows
}

/// `2026-12-01 03:00:00.123 UTC` from RFC 3339.
fn readable_time(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").replace('Z', " UTC")
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The history, and what could not be read for it, in plain words.
async fn history(service: &BackupService, csrf: &str) -> (HistoryFragment, Vec<String>) {
    let mut problems = Vec::new();
    let jobs = service.jobs_with_progress(50).await.unwrap_or_else(|e| {
        problems.push(format!("The job history could not be read: {e:#}"));
        Vec::new()
    });
    let snapshots = service.summaries().await.unwrap_or_else(|e| {
        problems.push(format!("The backup target could not be read: {e:#}"));
        Vec::new()
    });
    (
        HistoryFragment {
            csrf: csrf.to_owned(),
            rows: history_rows(jobs, &snapshots),
        },
        problems,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    partial: Option<String>,
}

#[handler]
pub(super) async fn backups_page(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let claims = session(state, jar).await;
    if !is_admin(state, claims.as_ref()) {
        return super::admins_only();
    }
    let csrf = claims.as_ref().map(|c| c.csrf.clone()).unwrap_or_default();
    let user = claims.as_ref().map(|c| c.sub.clone());
    let Some(service) = &state.backup else {
        return html(BackupsPage {
            user,
            csrf: csrf.clone(),
            admin: true,
            enabled: false,
            target: String::new(),
            schedule: String::new(),
            next_run: String::new(),
            keep: String::new(),
            running: None,
            running_text: String::new(),
            problems: Vec::new(),
            notice: String::new(),
            history: HistoryFragment {
                csrf,
                rows: Vec::new(),
            },
        });
    };
    let (history, mut problems) = history(service, &csrf).await;
    if query.partial.is_some() {
        return html(history);
    }
    if let Err(e) = service.check().await {
        problems.insert(0, format!("The backup target cannot be used: {e}"));
    }
    let running = service.running_job().await.ok().flatten();
    let settings = service.settings();
    html(BackupsPage {
        user,
        csrf,
        admin: true,
        enabled: true,
        target: service.target().describe(),
        schedule: settings
            .schedule
            .clone()
            .map(String::from)
            .unwrap_or_else(|| "none (backups run when started)".into()),
        next_run: service
            .next_run()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default(),
        keep: settings
            .keep
            .map(|k| {
                format!(
                    "the last {}, {} daily, {} weekly",
                    k.last, k.daily, k.weekly
                )
            })
            .unwrap_or_else(|| "every snapshot".into()),
        running_text: running.as_ref().map(progress_text).unwrap_or_default(),
        running: running.map(|j| j.id.to_string()),
        problems,
        notice: super::take_notice(req, jar),
        history,
    })
}

/// "copy: 1.2 MiB of 5.0 MiB, 3 of 10 objects, 4.0 MiB/s, 2 s left".
fn progress_text(job: &Job) -> String {
    let mut text = job.phase.clone();
    match job.bytes.total {
        Some(total) => {
            text += &format!(": {} of {}", human_size(job.bytes.done), human_size(total))
        }
        None => text += &format!(": {}", human_size(job.bytes.done)),
    }
    if let Some(total) = job.objects.total {
        text += &format!(", {} of {total} objects", job.objects.done);
    }
    if let Some(rate) = job.bytes_per_second {
        text += &format!(", {}/s", human_size(rate));
    }
    if let Some(eta) = job.eta_seconds {
        text += &format!(", {eta} s left");
    }
    text
}

#[derive(Debug, Deserialize)]
pub(super) struct JobQuery {
    id: String,
}

/// The job as JSON for the page's polling (the REST API's shape, plus the text shown).
#[handler]
pub(super) async fn job_json(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<JobQuery>,
) -> Response {
    let claims = session(state, jar).await;
    if !is_admin(state, claims.as_ref()) {
        return super::admins_only();
    }
    let (Some(service), Some(id)) = (&state.backup, SnapshotId::parse(&query.id)) else {
        return poem::http::StatusCode::NOT_FOUND.into_response();
    };
    match service.job(&id).await {
        Ok(Some(job)) => {
            let text = progress_text(&job);
            let mut value = serde_json::to_value(&job).expect("serializes");
            value["text"] = text.into();
            super::polled_json(value)
        }
        Ok(None) => poem::http::StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "reading a backup job");
            poem::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    snapshot: String,
    #[serde(default)]
    overwrite: Option<String>,
}

/// The administrator behind a form, once its token is checked; or the answer to give.
async fn admin_form(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
) -> Result<(String, Arc<BackupService>), Response> {
    let user = super::admin_form_user(state, jar, csrf).await?;
    let service = state
        .backup
        .clone()
        .ok_or_else(|| see_other("/ui/backups"))?;
    Ok((user, service))
}

/// After a form: back to the page, which shows the job started, or why none did.
fn back_to_page(req: &Request, jar: &CookieJar, outcome: Result<SnapshotId, String>) -> Response {
    match outcome {
        Ok(_) => see_other("/ui/backups"),
        Err(e) => see_other_with_notice(req, jar, "/ui/backups", &e),
    }
}

#[handler]
pub(super) async fn start(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<ActionForm>,
) -> Response {
    let (user, service) = match admin_form(state, jar, &form.csrf).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = service.start_backup(&user).await.map_err(|e| e.to_string());
    back_to_page(req, jar, outcome)
}

async fn snapshot_of(service: &BackupService, id: &str) -> Result<SnapshotRecord, String> {
    let id = SnapshotId::parse(id).ok_or_else(|| format!("No snapshot {id:?}."))?;
    service
        .snapshot(&Which::Id(id))
        .await
        .map_err(|e| e.to_string())
}

#[handler]
pub(super) async fn verify(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<ActionForm>,
) -> Response {
    let (user, service) = match admin_form(state, jar, &form.csrf).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = match snapshot_of(&service, &form.snapshot).await {
        Ok(record) => service
            .start_verify(&user, record)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    back_to_page(req, jar, outcome)
}

#[handler]
pub(super) async fn delete(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<ActionForm>,
) -> Response {
    let (user, service) = match admin_form(state, jar, &form.csrf).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = match snapshot_of(&service, &form.snapshot).await {
        Ok(record) => service
            .start_delete(&user, record.id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    back_to_page(req, jar, outcome)
}

#[derive(Debug, Deserialize)]
pub(super) struct RestoreQuery {
    snapshot: String,
    overwrite: Option<String>,
}

/// What restoring the snapshot will change, with the button that does it.
#[handler]
pub(super) async fn restore_page(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<RestoreQuery>,
) -> Response {
    let claims = session(state, jar).await;
    if !is_admin(state, claims.as_ref()) {
        return super::admins_only();
    }
    let Some(service) = &state.backup else {
        return see_other("/ui/backups");
    };
    let record = match snapshot_of(service, &query.snapshot).await {
        Ok(record) => record,
        Err(e) => return see_other_with_notice(req, jar, "/ui/backups", &e),
    };
    let overwrite = query.overwrite.is_some();
    let plan = match service
        .plan_restore(&record, RestoreOptions { overwrite })
        .await
    {
        Ok(plan) => plan,
        Err(e) => return see_other_with_notice(req, jar, "/ui/backups", &format!("{e:#}")),
    };
    const SHOWN: usize = 50;
    html(RestorePage {
        user: claims.as_ref().map(|c| c.sub.clone()),
        csrf: claims.map(|c| c.csrf).unwrap_or_default(),
        admin: true,
        snapshot: record.id.to_string(),
        overwrite,
        content_size: human_size(plan.content_bytes),
        moved_shown: plan.tags_moved.iter().take(SHOWN).cloned().collect(),
        moved_more: plan.tags_moved.len().saturating_sub(SHOWN),
        newer_shown: plan.tags_kept_newer.iter().take(SHOWN).cloned().collect(),
        newer_more: plan.tags_kept_newer.len().saturating_sub(SHOWN),
        immutable_shown: plan
            .tags_kept_immutable
            .iter()
            .take(SHOWN)
            .cloned()
            .collect(),
        immutable_more: plan.tags_kept_immutable.len().saturating_sub(SHOWN),
        restores_tokens: plan.api_tokens == crate::backup::restore::ApiTokens::Restore,
        plan,
    })
}

#[handler]
pub(super) async fn restore(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<ActionForm>,
) -> Response {
    let (user, service) = match admin_form(state, jar, &form.csrf).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let options = RestoreOptions {
        overwrite: form.overwrite.is_some(),
    };
    let outcome = match snapshot_of(&service, &form.snapshot).await {
        Ok(record) => service
            .start_restore(&user, record, options)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    back_to_page(req, jar, outcome)
}
