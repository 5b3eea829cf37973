//! The web interface: server-rendered pages (askama templates, checked at compile time) with
//! assets embedded in the binary and a little JavaScript on top. Everything shown is escaped by
//! the templates; what a caller may see is decided by the same access rules as `/v2`.

mod admin;
mod backups;
mod chart;
mod form;
mod gc;
mod home;
mod image;
mod plot;
mod render;
pub mod session;

use std::sync::Arc;

use askama::Template;
use form::PostedForm;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, get, handler, post};
use serde::Deserialize;

use crate::auth::{Action, Caller, Principal};
use crate::registry::RepoName;
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
        .at("/backups", get(backups::backups_page))
        .at("/backups/job", get(backups::job_json))
        .at("/backups/start", post(backups::start))
        .at("/backups/verify", post(backups::verify))
        .at("/backups/delete", post(backups::delete))
        .at(
            "/backups/restore",
            get(backups::restore_page).post(backups::restore),
        )
        .at("/gc", get(gc::gc_page))
        .at("/gc/run", get(gc::run_json))
        .at("/gc/start", post(gc::start))
        .at("/static/app.css", get(app_css))
        .at("/static/app.js", get(app_js))
        .with(poem::middleware::CookieJarManager::new())
}

/// `/`, with the cookie jar the pages need.
pub fn home_endpoint() -> impl poem::Endpoint {
    get(home::home).with(poem::middleware::CookieJarManager::new())
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

/// The signed-in user of a request, if any, with the groups the user has now: a session of
/// a user removed since login ends at once, and changed groups apply at once.
async fn session(state: &AppState, jar: &CookieJar) -> Option<SessionClaims> {
    let cookie = jar.get(SESSION_COOKIE)?;
    let mut claims = state.sessions.verify(cookie.value_str()).await?;
    let identity = state
        .access
        .current_identity(&claims.sub, claims.identity())
        .await?;
    claims.groups = identity.groups;
    Some(claims)
}

/// Whether the signed-in user administers the registry.
fn is_admin(state: &AppState, claims: Option<&SessionClaims>) -> bool {
    claims.is_some_and(|c| {
        let mut identity = c.identity();
        state.access.policy().add_memberships(&mut identity);
        state.access.policy().is_admin(&identity)
    })
}

/// Whether the caller may change `repo` with `action` (push: retag; delete): the access
/// rules as on /v2, and never the proxy cache, which only the proxy writes. Decides both what
/// the pages offer and what the forms accept.
fn may_change(state: &AppState, caller: &Caller, repo: &RepoName, action: Action) -> bool {
    !state.is_proxy_cache(repo)
        && state
            .access
            .authorize(caller, Some(repo.as_str()), action)
            .is_ok()
}

/// Checks a form that changes a repository: the session's CSRF token (403), that the
/// repository exists for the caller (404 naming `what` otherwise, as on /v2), and
/// [`may_change`] (403). Answers the repository.
async fn authorized_change(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
    repository: &str,
    action: Action,
    what: &str,
) -> Result<RepoName, Response> {
    let claims = session(state, jar).await;
    if !same_token(claims.as_ref().map(|c| c.csrf.as_str()), csrf) {
        return Err(csrf_refused());
    }
    let caller = caller(state, claims.as_ref());
    let repo = RepoName::parse(repository).ok_or_else(|| not_found(what))?;
    if !state.access.may_pull(&caller, repo.as_str()) {
        return Err(not_found(what));
    }
    if !may_change(state, &caller, &repo, action) {
        return Err(Response::builder()
            .status(StatusCode::FORBIDDEN)
            .content_type("text/plain; charset=utf-8")
            .body(format!("You may not change this {what}.")));
    }
    Ok(repo)
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
    html_with_images(page, false)
}

/// A page; `remote_images` lets it show images from other sites (chart icons, when the
/// configuration allows them).
fn html_with_images(page: impl Template, remote_images: bool) -> Response {
    match page.render() {
        Ok(body) => Response::builder()
            .content_type("text/html; charset=utf-8")
            .header(
                "Content-Security-Policy",
                content_security_policy(remote_images),
            )
            .header("X-Content-Type-Options", "nosniff")
            // Pages carry CSRF tokens and private listings: never from a shared cache.
            .header(header::CACHE_CONTROL, "no-store")
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
/// 403 for what only administrators may see or do.
fn admins_only() -> Response {
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .content_type("text/plain; charset=utf-8")
        .body("Only administrators may see this page.")
}

/// The administrator behind a posted form, once its CSRF token is checked; or the answer to
/// give.
async fn admin_form_user(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
) -> Result<String, Response> {
    let claims = session(state, jar).await;
    if !same_token(claims.as_ref().map(|c| c.csrf.as_str()), csrf) {
        return Err(csrf_refused());
    }
    if !is_admin(state, claims.as_ref()) {
        return Err(admins_only());
    }
    Ok(claims.map(|c| c.sub).unwrap_or_default())
}

/// A JSON answer for a page's polling, never cached.
fn polled_json(value: serde_json::Value) -> Response {
    let mut resp = poem::web::Json(value).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        poem::http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish()
}

/// A size for people.
use crate::human::bytes as human_size;

/// Only our own scripts and styles: an injected inline script would not run. Images from
/// elsewhere only where allowed.
fn content_security_policy(remote_images: bool) -> String {
    let images = if remote_images {
        "'self' data: https:"
    } else {
        "'self' data:"
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
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

/// Whether the browser reached us over HTTPS: directly, or through a proxy that terminates
/// TLS and says so (`X-Forwarded-Proto: https`). Trusting the header is safe here: it only
/// makes cookies `Secure` and shown commands use https.
fn secure(req: &Request) -> bool {
    req.scheme() == &poem::http::uri::Scheme::HTTPS
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
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

/// The cookie carrying a message to the next page.
const NOTICE_COOKIE: &str = "ocis_notice";

/// Back to `location`, which shows `message` once (why an action was refused). The message
/// travels in a short-lived cookie rather than the address, so a link cannot put words on
/// our pages.
fn see_other_with_notice(
    req: &Request,
    jar: &CookieJar,
    location: &str,
    message: &str,
) -> Response {
    use base64::Engine as _;
    let mut end = message.len().min(500);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&message[..end]);
    jar.add(cookie(NOTICE_COOKIE, value, req, 60));
    see_other(location)
}

/// The message left for this page, if any (shown once: the cookie is expired).
fn take_notice(req: &Request, jar: &CookieJar) -> String {
    use base64::Engine as _;
    let Some(value) = jar.get(NOTICE_COOKIE).map(|c| c.value_str().to_owned()) else {
        return String::new();
    };
    jar.add(cookie(NOTICE_COOKIE, String::new(), req, 0));
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
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

#[derive(Default, Deserialize)]
#[serde(default)]
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
    PostedForm(form): PostedForm<LoginForm>,
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
            // Expired on the path it was set for (a plain remove names no path).
            jar.add(cookie(LOGIN_CSRF_COOKIE, String::new(), req, 0));
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

#[derive(Default, Deserialize)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

#[handler]
async fn logout(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<CsrfForm>,
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
