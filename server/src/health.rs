//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: storage is reachable).

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use crate::state::AppState;

/// How long the storage check may take before the process counts as not ready. A store that
/// accepts connections but never answers would otherwise hold every probe for as long as the
/// backend's own timeouts allow (minutes on s3, whose read timeout leaves room for slow
/// server-side copies), and a probe that does not answer says nothing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

#[handler]
pub async fn readyz(Data(state): Data<&Arc<AppState>>) -> Response {
    let failure = match tokio::time::timeout(CHECK_TIMEOUT, state.registry.storage().check()).await
    {
        Ok(Ok(())) => return Response::builder().status(StatusCode::OK).body("ready"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
    };
    tracing::warn!(error = %failure, "readiness check failed");
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .body("storage unavailable")
}
