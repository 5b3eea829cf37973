//! The garbage collection page (administrators): the settings, what the last run found or
//! would find, **Dry run** and **Collect now** (CSRF-checked forms that start a run in the
//! background and answer 303 to the page), the running run's progress (app.js polls
//! `/ui/gc/run`), and the history of runs of every replica.

use std::sync::Arc;

use askama::Template;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::form::PostedForm;
use super::{html, human_size, is_admin, see_other, see_other_with_notice, session};
use crate::gc::service::{RunRecord, Running};
use crate::state::AppState;

/// One row of the history.
struct HistoryRow {
    when: String,
    what: &'static str,
    started_by: String,
    state: String,
    error: String,
    duration: String,
    collected: String,
    freed: String,
}

impl From<&RunRecord> for HistoryRow {
    fn from(r: &RunRecord) -> Self {
        let report = r.report.as_ref();
        Self {
            when: r.started_at.replace('T', " ").replace('Z', " UTC"),
            what: if r.dry_run { "Dry run" } else { "Run" },
            started_by: r.started_by.clone(),
            state: r.state.clone(),
            error: r.error.clone().unwrap_or_default(),
            duration: report
                .map(|r| format!("{:.1} s", r.duration_ms as f64 / 1000.0))
                .unwrap_or_default(),
            collected: report.map(collected).unwrap_or_default(),
            freed: report
                .filter(|r| !r.dry_run)
                .map(|r| human_size(r.trash_bytes))
                .unwrap_or_default(),
        }
    }
}

/// "3 manifests, 12 blobs (4.2 MiB)".
fn collected(r: &crate::gc::Report) -> String {
    let retention = match r.retention_tags {
        0 => String::new(),
        n => format!("{n} tags (retention), "),
    };
    format!(
        "{retention}{} manifests, {} blob links, {} content objects ({})",
        r.manifests,
        r.blob_links,
        r.content_objects,
        human_size(r.content_bytes)
    )
}

#[derive(Template)]
#[template(path = "gc_history.html")]
struct HistoryFragment {
    rows: Vec<HistoryRow>,
}

#[derive(Template)]
#[template(path = "gc.html")]
struct GcPage {
    user: Option<String>,
    csrf: String,
    admin: bool,
    schedule: String,
    next_run: String,
    delay: String,
    untagged: bool,
    /// What the newest run found: "… would be collected (dry run of …)".
    reclaimable: String,
    /// Another job holding the lease (a run elsewhere, or a backup job).
    busy: String,
    running: Option<String>,
    running_text: String,
    problems: Vec<String>,
    notice: String,
    history: HistoryFragment,
}

fn progress_text(running: &Running) -> String {
    let view = running.view();
    let mut text = view.phase.to_owned();
    if let Some(total) = view.objects.total {
        text += &format!(": {} of {total}", view.objects.done);
    }
    text
}

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    partial: Option<String>,
}

#[handler]
pub(super) async fn gc_page(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let claims = session(state, jar).await;
    if !is_admin(state, claims.as_ref()) {
        return super::admins_only();
    }
    let gc = &state.gc;
    let mut problems = Vec::new();
    let runs = gc.runs(50).await.unwrap_or_else(|e| {
        problems.push(format!("The history could not be read: {e:#}"));
        Vec::new()
    });
    let history = HistoryFragment {
        rows: runs.iter().map(HistoryRow::from).collect(),
    };
    if query.partial.is_some() {
        return html(history);
    }
    let reclaimable = runs
        .iter()
        .find_map(|r| r.report.as_ref().map(|report| (r, report)))
        .map(|(r, report)| {
            let verb = if report.dry_run {
                "would collect"
            } else {
                "collected"
            };
            format!(
                "The {} of {} {verb} {}.",
                if report.dry_run { "dry run" } else { "run" },
                r.started_at.replace('T', " ").replace('Z', " UTC"),
                collected(report)
            )
        })
        .unwrap_or_else(|| "Not known yet: start a dry run to see.".into());
    let running = gc.running();
    let busy = match (&running, gc.lease_holder().await) {
        (None, Ok(Some(lease))) => format!(
            "Another job holds the lease: {} {} on {}.",
            lease.kind, lease.job, lease.holder
        ),
        _ => String::new(),
    };
    let settings = gc.settings();
    html(GcPage {
        user: claims.as_ref().map(|c| c.sub.clone()),
        csrf: claims.map(|c| c.csrf).unwrap_or_default(),
        admin: true,
        schedule: gc
            .schedule()
            .cloned()
            .map(String::from)
            .unwrap_or_else(|| "none (runs when started)".into()),
        next_run: gc
            .next_run()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default(),
        delay: humantime::format_duration(settings.delay).to_string(),
        untagged: settings.untagged,
        reclaimable,
        busy,
        running_text: running.as_ref().map(progress_text).unwrap_or_default(),
        running: running.map(|r| r.record.id),
        problems,
        notice: super::take_notice(req, jar),
        history,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct RunQuery {
    id: String,
}

/// A run as JSON for the page's polling: the counters (while it runs here), its state.
#[handler]
pub(super) async fn run_json(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<RunQuery>,
) -> Response {
    let claims = session(state, jar).await;
    if !is_admin(state, claims.as_ref()) {
        return super::admins_only();
    }
    let value = if let Some(running) = state.gc.running().filter(|r| r.record.id == query.id) {
        let view = running.view();
        serde_json::json!({
            "id": running.record.id,
            "kind": if running.record.dry_run { "dry run" } else { "garbage collection" },
            "state": "running",
            "text": progress_text(&running),
            "objects": {"done": view.objects.done, "total": view.objects.total},
            "bytes": {"done": view.bytes.done, "total": view.bytes.total},
        })
    } else {
        match state.gc.run(&query.id).await {
            Ok(Some(r)) => serde_json::json!({
                "id": r.id,
                "kind": if r.dry_run { "dry run" } else { "garbage collection" },
                "state": r.state,
                "error": r.error,
                "text": r.state,
                "objects": {"done": 1, "total": 1},
                "bytes": {"done": 0, "total": null},
            }),
            Ok(None) => return poem::http::StatusCode::NOT_FOUND.into_response(),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading a gc run");
                return poem::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    };
    super::polled_json(value)
}

#[derive(Debug, Deserialize)]
pub(super) struct StartForm {
    #[serde(default)]
    csrf: String,
    /// Present (any value) for a dry run.
    #[serde(default)]
    dry_run: Option<String>,
}

#[handler]
pub(super) async fn start(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<StartForm>,
) -> Response {
    let user = match super::admin_form_user(state, jar, &form.csrf).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    match state.gc.start(form.dry_run.is_some(), &user).await {
        Ok(_) => see_other("/ui/gc"),
        Err(e) => see_other_with_notice(req, jar, "/ui/gc", &e.to_string()),
    }
}
