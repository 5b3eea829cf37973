//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: storage is reachable).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use crate::state::AppState;

#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

#[handler]
pub async fn readyz(Data(state): Data<&Arc<AppState>>) -> Response {
    match state.registry.storage().check().await {
        Ok(()) => Response::builder().status(StatusCode::OK).body("ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body("storage unavailable")
        }
    }
}
