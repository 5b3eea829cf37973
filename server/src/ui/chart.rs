//! The chart page: versions, metadata, README, values, templates, install commands, download.

use std::sync::Arc;

use super::form::PostedForm;
use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::render::{YamlLine, chart_icon, readme_html, yaml_lines};
use super::{caller, html_with_images, human_size, session};
use crate::auth::Action;
use crate::charts::IndexEntry;
use crate::registry::{Reference, RepoName, Tag};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(super) struct ChartQuery {
    repository: String,
    version: Option<String>,
}

/// `/ui/chart?repository=…&version=…`
pub(super) fn link(repository: &str, version: Option<&str>) -> String {
    match version {
        Some(value) => super::page_link(
            "/ui/chart",
            &[("repository", repository), ("version", value)],
        ),
        None => super::page_link("/ui/chart", &[("repository", repository)]),
    }
}

#[derive(Template)]
#[template(path = "chart.html")]
struct ChartPage {
    user: Option<String>,
    csrf: String,
    /// Administrators see the proxy and backup pages.
    admin: bool,
    repository: String,
    name: String,
    version: String,
    description: String,
    /// The icon's URL when it may be shown, else empty (the page shows an initial).
    icon: String,
    deprecated: bool,
    app_version: String,
    created: String,
    size: String,
    provenance: bool,
    home: String,
    sources: Vec<String>,
    maintainers: Vec<String>,
    keywords: Vec<String>,
    dependencies: Vec<String>,
    /// (version, pushed, link)
    versions: Vec<(String, String, String)>,
    templates: Vec<String>,
    readme: String,
    values: Vec<YamlLine>,
    install_oci: String,
    install_repo: String,
    download: String,
    file_name: String,
    /// The caller may delete versions here (and deletes are enabled).
    can_delete: bool,
    notice: String,
}

fn not_found() -> Response {
    super::not_found("chart")
}

/// The versions of a chart the caller may see, newest first, and the chosen one.
async fn versions_of(
    state: &AppState,
    jar: &CookieJar,
    query: &ChartQuery,
) -> Option<(Option<session::SessionClaims>, Vec<Arc<IndexEntry>>, usize)> {
    let claims = super::session(state, jar).await;
    let caller = caller(state, claims.as_ref());
    if !state.access.may_pull(&caller, &query.repository) {
        return None;
    }
    let (_, all) = state.charts.entries().await;
    let mut versions: Vec<Arc<IndexEntry>> = all
        .into_iter()
        .filter(|e| e.repository == query.repository)
        .collect();
    versions.sort_by(|a, b| crate::api::charts::semver_desc(a, b));
    let chosen = match query.version.as_deref() {
        Some(v) => versions.iter().position(|e| e.metadata.version == v)?,
        None if versions.is_empty() => return None,
        None => 0,
    };
    Some((claims, versions, chosen))
}

#[handler]
pub(super) async fn chart_page(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<ChartQuery>,
) -> Response {
    let Some((claims, versions, chosen)) = versions_of(state, jar, &query).await else {
        return not_found();
    };
    let can_delete = state.registry.settings().delete_enabled
        && RepoName::parse(&query.repository).is_some_and(|repo| {
            super::may_change(
                state,
                &caller(state, claims.as_ref()),
                &repo,
                Action::Delete,
            )
        });
    let entry = &versions[chosen];
    let record = match state.charts.record(&entry.repository, &entry.tag).await {
        Ok(Some(record)) => record,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "reading chart metadata for the web interface");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let m = &record.content.metadata;
    let host = super::request_host(req);
    let scheme = if super::secure(req) { "https" } else { "http" };
    let namespace = entry.namespace();
    let repo_alias = if namespace.is_empty() {
        "oci-storage".to_owned()
    } else {
        namespace.replace('/', "-")
    };
    let plain_http = if scheme == "http" {
        " --plain-http"
    } else {
        ""
    };
    let icon = chart_icon(m.icon.as_deref(), state.ui.remote_icons).unwrap_or_default();
    let remote_icon = icon.starts_with("https:");
    let page = ChartPage {
        user: claims.as_ref().map(|c| c.sub.clone()),
        admin: super::is_admin(state, claims.as_ref()),
        csrf: claims.map(|c| c.csrf).unwrap_or_default(),
        repository: entry.repository.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
        description: m.description.clone().unwrap_or_default(),
        icon,
        deprecated: m.deprecated,
        app_version: m.app_version.clone().unwrap_or_default(),
        created: entry.created.clone(),
        size: human_size(entry.chart_size),
        provenance: entry.provenance_digest.is_some(),
        home: m.home.clone().unwrap_or_default(),
        sources: m.sources.clone(),
        maintainers: m
            .maintainers
            .iter()
            .map(|p| match &p.email {
                Some(email) => format!("{} <{email}>", p.name),
                None => p.name.clone(),
            })
            .collect(),
        keywords: m.keywords.clone(),
        dependencies: m
            .dependencies
            .iter()
            .map(|d| format!("{} {}", d.name, d.version.clone().unwrap_or_default()))
            .collect(),
        versions: versions
            .iter()
            .map(|v| {
                (
                    v.metadata.version.clone(),
                    v.created.clone(),
                    link(&v.repository, Some(&v.metadata.version)),
                )
            })
            .collect(),
        templates: record.content.templates.clone(),
        readme: record
            .content
            .readme
            .as_deref()
            .map(readme_html)
            .unwrap_or_default(),
        values: record
            .content
            .values
            .as_deref()
            .map(yaml_lines)
            .unwrap_or_default(),
        install_oci: format!(
            "helm install {} oci://{host}/{} --version {}{plain_http}",
            m.name, entry.repository, m.version
        ),
        install_repo: format!(
            "helm repo add {repo_alias} {scheme}://{host}/{namespace} && helm install {} {repo_alias}/{} --version {}",
            m.name, m.name, m.version
        ),
        download: format!(
            "/ui/chart/download?{}",
            serde_urlencoded::to_string([
                ("repository", entry.repository.as_str()),
                ("version", m.version.as_str())
            ])
            .unwrap_or_default()
        ),
        file_name: entry.file_name(),
        can_delete,
        notice: super::take_notice(req, jar),
    };
    html_with_images(page, remote_icon)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct DeleteForm {
    csrf: String,
    repository: String,
    version: String,
}

/// Deletes one chart version (its tag), for callers with delete rights.
#[handler]
pub(super) async fn chart_delete(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<DeleteForm>,
) -> Response {
    let repo = match super::authorized_change(
        state,
        jar,
        &form.csrf,
        &form.repository,
        Action::Delete,
        "chart",
    )
    .await
    {
        Ok(repo) => repo,
        Err(response) => return response,
    };
    // A version's tag is the version with `+` (not allowed in tags) as `_`.
    let Some(tag) = Tag::parse(&form.version.replace('+', "_")) else {
        return not_found();
    };
    if let Err(e) = state
        .registry
        .delete_manifest(&repo, &Reference::Tag(tag.clone()))
        .await
    {
        // Refused (immutable tag, deletes disabled…): back to the page, saying why.
        return super::see_other_with_notice(
            req,
            jar,
            &link(repo.as_str(), Some(&form.version)),
            &e.message,
        );
    }
    state.charts.tag_deleted(&repo, &tag).await;
    state.usage.invalidate(repo.as_str());
    let remaining = state
        .charts
        .entries()
        .await
        .1
        .iter()
        .any(|e| e.repository == repo.as_str());
    if remaining {
        super::see_other(&link(repo.as_str(), None))
    } else {
        super::see_other("/")
    }
}

/// The chart archive, for the signed-in (or anonymous, where allowed) browser.
#[handler]
pub(super) async fn chart_download(
    req: &poem::Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<ChartQuery>,
) -> Response {
    let Some((_, versions, chosen)) = versions_of(state, jar, &query).await else {
        return not_found();
    };
    let entry = &versions[chosen];
    let Some(repo) = RepoName::parse(&entry.repository) else {
        return not_found();
    };
    match state
        .registry
        .get_blob(&repo, &entry.chart_digest, None)
        .await
    {
        Ok(read) => Response::builder()
            .content_type("application/gzip")
            .header(header::CONTENT_LENGTH, read.meta.size)
            .header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", entry.file_name()),
            )
            .body(crate::zero_copy::blob_body(req, read)),
        Err(_) => not_found(),
    }
}
