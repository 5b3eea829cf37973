//! The web interface: server-rendered pages (askama templates, checked at compile time) with
//! assets embedded in the binary and a little JavaScript on top. Everything shown is escaped by
//! the templates; what a caller may see is decided by the same access rules as `/v2`.

mod admin;
mod chart;
mod image;
mod render;
pub mod session;

use std::sync::Arc;

use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::web::{Data, Form, Query};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, get, handler, post};
use serde::Deserialize;

use crate::api::repositories::{RepositoryKind, SearchFilters, search_repositories};
use crate::auth::{Caller, Principal};
use crate::state::AppState;
use session::{LOGIN_CSRF_COOKIE, SESSION_COOKIE, SessionClaims, random_token};

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// The pages under `/ui` (the home page is `/`, routed by the application).
pub fn routes() -> impl poem::Endpoint {
    Route::new()
        .at("/login", get(login_page).post(login))
        .at("/logout", post(logout))
        .at("/chart", get(chart::chart_page))
        .at("/chart/download", get(chart::chart_download))
        .at("/chart/delete", post(chart::chart_delete))
        .at("/image", get(image::image_page))
        .at("/tag/copy", post(image::tag_copy))
        .at("/tag/delete", post(image::tag_delete))
        .at("/proxy", get(admin::proxy_page))
        .at("/backups", get(admin::backups_page))
        .at("/static/app.css", get(app_css))
        .at("/static/app.js", get(app_js))
        .with(poem::middleware::CookieJarManager::new())
}

/// `/`, with the cookie jar the pages need.
pub fn home_endpoint() -> impl poem::Endpoint {
    get(home).with(poem::middleware::CookieJarManager::new())
}

/// Sends `/` to the home page and every other path to `other`.
pub struct RootOr {
    home: poem::endpoint::BoxEndpoint<'static>,
    other: poem::endpoint::BoxEndpoint<'static>,
}

impl std::fmt::Debug for RootOr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootOr { .. }")
    }
}

impl RootOr {
    pub fn new(
        home_page: impl poem::Endpoint + 'static,
        rest: impl poem::Endpoint + 'static,
    ) -> Self {
        Self {
            home: home_page.map_to_response().boxed(),
            other: rest.map_to_response().boxed(),
        }
    }
}

impl poem::Endpoint for RootOr {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path() == "/" {
            self.home.call(req).await
        } else {
            self.other.call(req).await
        }
    }
}

/// The signed-in user of a request, if any.
async fn session(state: &AppState, jar: &CookieJar) -> Option<SessionClaims> {
    let cookie = jar.get(SESSION_COOKIE)?;
    state.sessions.verify(cookie.value_str()).await
}

/// Whether the signed-in user administers the registry.
fn is_admin(state: &AppState, claims: Option<&SessionClaims>) -> bool {
    claims.is_some_and(|c| {
        let mut identity = c.identity();
        state.access.policy().add_memberships(&mut identity);
        state.access.policy().is_admin(&identity)
    })
}

fn caller(state: &AppState, claims: Option<&SessionClaims>) -> Caller {
    match claims {
        Some(claims) => {
            let mut identity = claims.identity();
            state.access.policy().add_memberships(&mut identity);
            Caller::User(Principal {
                identity,
                api_token: None,
            })
        }
        None => Caller::Anonymous,
    }
}

fn html(page: impl Template) -> Response {
    match page.render() {
        Ok(body) => Response::builder()
            .content_type("text/html; charset=utf-8")
            .header("Content-Security-Policy", CSP)
            .header("X-Content-Type-Options", "nosniff")
            .header("Referrer-Policy", "same-origin")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The host clients used to reach us, for copyable commands.
fn request_host(req: &Request) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:3030")
        .to_owned()
}

/// A page path with its query.
fn page_link(path: &str, params: &[(&str, &str)]) -> String {
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(params).unwrap_or_default()
    )
}

/// A plain 404 naming what was not found (or is not visible to the caller).
fn not_found(what: &str) -> Response {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .content_type("text/plain; charset=utf-8")
        .body(format!("No such {what}."))
}

/// Where a form post continues.
fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish()
}

/// A size for people.
fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / (1 << 10) as f64),
        b => format!("{b} B"),
    }
}

/// Only our own scripts and styles: an injected inline script would not run.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One row of the repository list.
#[derive(Debug)]
struct Row {
    repository: String,
    /// The chart page, for charts.
    link: String,
    kind: &'static str,
    version: String,
    description: String,
    deprecated: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    user: Option<String>,
    csrf: String,
    /// Administrators see the proxy and backup pages.
    admin: bool,
    query: String,
    kind: String,
    prefix: String,
    deprecated: String,
    results: ResultsView,
}

#[derive(Template)]
#[template(path = "results.html")]
struct Results {
    user: Option<String>,
    results: ResultsView,
}

/// One page of the list, with its counts and neighbours.
#[derive(Debug, Default)]
struct ResultsView {
    hits: Vec<Row>,
    total: usize,
    charts: usize,
    images: usize,
    page: usize,
    pages: usize,
    /// Links to the previous and next pages (empty when there is none).
    prev: String,
    next: String,
}

/// Rows per page.
const PER_PAGE: usize = 50;

#[derive(Debug, Deserialize)]
struct HomeQuery {
    q: Option<String>,
    kind: Option<String>,
    /// Only repositories under this prefix.
    prefix: Option<String>,
    /// `hide` or `only` deprecated charts (anything else: show them).
    deprecated: Option<String>,
    page: Option<usize>,
    /// Set by the search-as-you-type script: answer the result list only.
    partial: Option<String>,
}

impl HomeQuery {
    /// `/` with these filters on another page.
    fn page_link(&self, page: usize) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("q", &self.q),
            ("kind", &self.kind),
            ("prefix", &self.prefix),
            ("deprecated", &self.deprecated),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                params.push((name, v.clone()));
            }
        }
        params.push(("page", page.to_string()));
        format!(
            "/?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    }
}

fn kind_name(kind: RepositoryKind) -> &'static str {
    match kind {
        RepositoryKind::Chart => "chart",
        RepositoryKind::Image => "image",
        RepositoryKind::Artifact => "artifact",
        RepositoryKind::Empty => "empty",
    }
}

#[handler]
async fn home(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<HomeQuery>,
) -> Response {
    let claims = session(state, jar).await;
    let caller = caller(state, claims.as_ref());
    let kind = match query.kind.as_deref() {
        Some("chart") => Some(RepositoryKind::Chart),
        Some("image") => Some(RepositoryKind::Image),
        _ => None,
    };
    let filters = SearchFilters {
        text: query.q.clone().filter(|q| !q.trim().is_empty()),
        kind,
        prefix: query.prefix.clone().filter(|p| !p.trim().is_empty()),
    };
    let hits = match search_repositories(state, &caller, &filters).await {
        Ok(hits) => hits,
        Err(e) => {
            tracing::error!(error = %e.message, "listing repositories for the web interface");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    // Deprecation is a chart's: read it from the newest version in the chart index.
    let (_, entries) = state.charts.entries().await;
    let mut newest_deprecated: std::collections::HashMap<&str, (semver::Version, bool)> =
        Default::default();
    for e in entries.iter() {
        let Ok(version) = semver::Version::parse(&e.metadata.version) else {
            continue;
        };
        let slot = newest_deprecated
            .entry(e.repository.as_str())
            .or_insert((version.clone(), e.metadata.deprecated));
        if version > slot.0 {
            *slot = (version, e.metadata.deprecated);
        }
    }
    let is_deprecated = |repo: &str| newest_deprecated.get(repo).is_some_and(|(_, d)| *d);
    let rows: Vec<Row> = hits
        .into_iter()
        .filter(|h| match query.deprecated.as_deref() {
            Some("hide") => !is_deprecated(&h.repository),
            Some("only") => is_deprecated(&h.repository),
            _ => true,
        })
        .map(|h| Row {
            link: match h.kind {
                RepositoryKind::Chart => chart::link(&h.repository, None),
                _ => image::link(&h.repository, None),
            },
            deprecated: is_deprecated(&h.repository),
            repository: h.repository,
            kind: kind_name(h.kind),
            version: h.version.unwrap_or_default(),
            description: h.description.unwrap_or_default(),
        })
        .collect();
    let total = rows.len();
    let charts = rows.iter().filter(|r| r.kind == "chart").count();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let results = ResultsView {
        charts,
        images: total - charts,
        total,
        page,
        pages,
        prev: if page > 1 {
            query.page_link(page - 1)
        } else {
            String::new()
        },
        next: if page < pages {
            query.page_link(page + 1)
        } else {
            String::new()
        },
        hits: rows
            .into_iter()
            .skip((page - 1) * PER_PAGE)
            .take(PER_PAGE)
            .collect(),
    };
    let user = claims.as_ref().map(|c| c.sub.clone());
    if query.partial.is_some() {
        return html(Results { user, results });
    }
    html(HomePage {
        user,
        admin: is_admin(state, claims.as_ref()),
        csrf: claims.map(|c| c.csrf).unwrap_or_default(),
        query: query.q.unwrap_or_default(),
        kind: query.kind.unwrap_or_default(),
        prefix: query.prefix.unwrap_or_default(),
        deprecated: query.deprecated.unwrap_or_default(),
        results,
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    user: Option<String>,
    csrf: String,
    /// Administrators see the proxy and backup pages.
    admin: bool,
    error: String,
}

fn secure(req: &Request) -> bool {
    req.scheme() == &poem::http::uri::Scheme::HTTPS
}

fn cookie(name: &str, value: String, req: &Request, max_age: u64) -> Cookie {
    let mut cookie = Cookie::new_with_str(name, value);
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(secure(req));
    cookie.set_max_age(std::time::Duration::from_secs(max_age));
    cookie
}

/// The login form, with a fresh double-submit CSRF token.
fn login_form(req: &Request, jar: &CookieJar, error: &str) -> Response {
    let token = random_token();
    let mut login_cookie = cookie(LOGIN_CSRF_COOKIE, token.clone(), req, 3600);
    login_cookie.set_same_site(SameSite::Strict);
    jar.add(login_cookie);
    let mut resp = html(LoginPage {
        user: None,
        admin: false,
        csrf: token,
        error: error.to_owned(),
    });
    if !error.is_empty() {
        resp.set_status(StatusCode::UNAUTHORIZED);
    }
    resp
}

#[handler]
async fn login_page(req: &Request, jar: &CookieJar) -> Response {
    login_form(req, jar, "")
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

/// A form post without the right token: refused before anything else happens.
fn csrf_refused() -> Response {
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .content_type("text/plain; charset=utf-8")
        .body(
            "This form has expired or did not come from this site. Reload the page and try again.",
        )
}

fn same_token(expected: Option<&str>, given: &str) -> bool {
    expected.is_some_and(|e| {
        !e.is_empty() && oci_storage_core::secret::constant_time_eq(e.as_bytes(), given.as_bytes())
    })
}

#[handler]
async fn login(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = jar.get(LOGIN_CSRF_COOKIE).map(|c| c.value_str().to_owned());
    if !same_token(expected.as_deref(), &form.csrf) {
        return csrf_refused();
    }
    use base64::Engine as _;
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", form.username, form.password))
    );
    let client = req.remote_addr().as_socket_addr().map(|a| a.ip());
    match state.access.basic(&header, client).await {
        Ok(Some(principal)) if principal.api_token.is_none() => {
            let Ok(value) = state.sessions.issue(&principal.identity).await else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            jar.remove(LOGIN_CSRF_COOKIE);
            jar.add(cookie(
                SESSION_COOKIE,
                value,
                req,
                session::Sessions::max_age(),
            ));
            Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, "/")
                .finish()
        }
        Err(crate::auth::Denial::TooManyRequests(_)) => {
            login_form(req, jar, "Too many failed attempts. Try again later.")
        }
        _ => login_form(req, jar, "Wrong username or password."),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

#[handler]
async fn logout(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    let claims = session(state, jar).await;
    if !same_token(claims.as_ref().map(|c| c.csrf.as_str()), &form.csrf) {
        return csrf_refused();
    }
    // Expired at once, on the path it was set for (a bare removal would name the request's).
    jar.add(cookie(SESSION_COOKIE, String::new(), req, 0));
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, "/")
        .finish()
}

#[handler]
fn app_css() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(APP_CSS)
}

#[handler]
fn app_js() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(APP_JS)
}
