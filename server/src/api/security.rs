//! Authentication of REST API calls: HTTP Basic with a password or an API token, through the
//! same access gate (cache, login limits) as `/v2`.

use std::sync::Arc;

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Basic;

use crate::auth::{Denial, Principal};
use crate::state::AppState;

/// HTTP Basic: username and password, or username and API token.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "basic", checker = "authenticate")]
pub struct ApiUser(pub Principal);

async fn authenticate(req: &Request, basic: Basic) -> poem::Result<Principal> {
    let state = req
        .data::<Arc<AppState>>()
        .expect("the application state is attached");
    let header = {
        use base64::Engine as _;
        let pair = format!("{}:{}", basic.username, basic.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let client = req.remote_addr().as_socket_addr().map(|a| a.ip());
    match state.access.basic(&header, client).await {
        Ok(Some(principal)) => {
            if let Some(slot) = req.extensions().get::<crate::logging::RequestUser>() {
                slot.set(&principal.identity.username);
            }
            Ok(principal)
        }
        Ok(None) | Err(Denial::Unauthenticated | Denial::Denied) => Err(poem::Error::from_string(
            "authentication required",
            StatusCode::UNAUTHORIZED,
        )),
        Err(Denial::TooManyRequests(wait)) => Err(poem::Error::from_string(
            format!(
                "too many failed login attempts; retry in {} s",
                wait.as_secs().max(1)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        )),
        Err(Denial::Unavailable) => Err(poem::Error::from_string(
            "authentication is temporarily unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
        )),
    }
}

/// Administrative operations: an administrator, with a password (an API token never acts as
/// an administrator, whoever owns it).
pub fn require_admin(
    state: &AppState,
    principal: &Principal,
    what: &str,
) -> Result<(), super::problem::ApiError> {
    if principal.api_token.is_some() || !state.access.policy().is_admin(&principal.identity) {
        return Err(super::problem::ApiError::forbidden(format!(
            "only administrators may {what}"
        )));
    }
    Ok(())
}
