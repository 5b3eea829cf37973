//! The OCI Distribution API (`/v2/…`): one catch-all poem endpoint that authenticates the
//! caller, parses the request into an [`OciEndpoint`], checks the action is allowed, and
//! dispatches to a handler. Every failure is answered as OCI error JSON.

pub mod endpoint;
mod handlers;
mod proxied;
pub mod range;
pub mod response;

use std::sync::Arc;

use poem::http::{HeaderValue, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};

pub use endpoint::OciEndpoint;

use crate::auth::{Action, Denial};
use crate::registry::{ErrorCode, RegistryError, RepoName};
use crate::state::AppState;
use response::{API_VERSION_HEADER, error_response};

/// Serves every `/v2` request.
#[handler]
pub async fn v2(req: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let path = req.uri().path();
    let path = path.strip_prefix("/v2").unwrap_or(path);
    let path = path.strip_prefix('/').unwrap_or(path);
    let mut resp = match serve(state, req, body, path).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    };
    resp.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    resp
}

async fn serve(
    state: &AppState,
    req: &Request,
    body: Body,
    path: &str,
) -> Result<Response, RegistryError> {
    let challenge = |scope: Option<String>| {
        let host = req.headers().get(header::HOST)?.to_str().ok()?;
        let scheme = req.scheme().as_str();
        Some(
            state
                .access
                .tokens()?
                .challenge(scheme, host, scope.as_deref()),
        )
    };
    let caller = state
        .access
        .identify_request(req)
        .await
        .map_err(|d| denied(d).with_challenge(challenge(None)))?;
    let endpoint = OciEndpoint::parse(req.method(), path)?;
    // The pull-through proxy: `proxy/…` names, or any name with `?ns=<registry>`.
    let ns = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ns")
            .map(|(_, v)| v.into_owned())
    });
    let proxied = state.proxy.as_ref().and_then(|proxy| {
        let target = proxy.route(endpoint.repository()?, ns.as_deref())?;
        Some((proxy, target))
    });
    let repository = match &proxied {
        Some((_, target)) => Some(target.local.as_str()),
        None => endpoint.repository().map(RepoName::as_str),
    };
    // `/v2/` is the ping by which clients decide whether to send credentials: a caller
    // without them is always challenged there (as Distribution and Harbor do), even when
    // anonymous pulls are allowed, or `docker login` with a wrong password would "succeed"
    // and clients with credentials would push without them. Pulls stay anonymous.
    if matches!(endpoint, OciEndpoint::ApiVersion) && caller.identity().is_none() {
        return Err(denied(Denial::Unauthenticated).with_challenge(challenge(None)));
    }
    state
        .access
        .authorize(&caller, repository, endpoint.action())
        .map_err(|d| denied(d).with_challenge(challenge(scope_of(&endpoint))))?;
    if let Some((proxy, target)) = proxied {
        let mut resp = proxied::dispatch(state, proxy, &target, endpoint, req).await?;
        if let Some(ns) = ns
            .as_deref()
            .and_then(|ns| poem::http::HeaderValue::from_str(ns).ok())
        {
            resp.headers_mut().insert("OCI-Namespace", ns);
        }
        return Ok(resp);
    }
    handlers::dispatch(state, req, body, endpoint, &caller).await
}

/// The token scope an operation needs, as Docker clients request it.
fn scope_of(endpoint: &OciEndpoint) -> Option<String> {
    match (endpoint, endpoint.repository()) {
        (OciEndpoint::Catalog, _) => Some("registry:catalog:*".to_owned()),
        (_, Some(repo)) => {
            let actions = match endpoint.action() {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            Some(format!("repository:{repo}:{actions}"))
        }
        (_, None) => None,
    }
}

fn denied(denial: Denial) -> RegistryError {
    match denial {
        Denial::Unauthenticated => {
            RegistryError::new(ErrorCode::Unauthorized, "authentication required")
        }
        Denial::Denied => RegistryError::new(
            ErrorCode::Denied,
            "requested access to the resource is denied",
        ),
        Denial::TooManyRequests(wait) => RegistryError::new(
            ErrorCode::TooManyRequests,
            "too many failed login attempts; retry later",
        )
        .with_retry_after(wait.as_secs().max(1)),
        Denial::Unavailable => RegistryError::new(
            ErrorCode::Unknown,
            "authentication is temporarily unavailable",
        )
        .with_status(503),
    }
}
