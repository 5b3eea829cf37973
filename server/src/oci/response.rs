//! Building `/v2` answers: OCI error JSON, and the headers clients rely on.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Response};

use crate::auth::CHALLENGE;
use crate::registry::{ErrorCode, RegistryError};

pub const DOCKER_CONTENT_DIGEST: &str = "Docker-Content-Digest";
pub const DOCKER_UPLOAD_UUID: &str = "Docker-Upload-UUID";
pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";

/// Renders an error as `{"errors":[{"code","message","detail"}]}`.
pub fn error_response(err: &RegistryError) -> Response {
    let mut entry = serde_json::json!({
        "code": err.code.as_str(),
        "message": err.message,
    });
    if let Some(detail) = &err.detail {
        entry["detail"] = detail.clone();
    }
    let body = serde_json::json!({ "errors": [entry] });
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json")
        .body(Body::from_vec(body.to_string().into_bytes()));
    if err.code == ErrorCode::Unauthorized {
        let challenge = err
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
            .unwrap_or(HeaderValue::from_static(CHALLENGE));
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    if let Some(methods) = err.allow {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(methods));
    }
    if err.code == ErrorCode::TooManyRequests {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(err.retry_after.unwrap_or(1)),
        );
    }
    resp
}

/// The `Range` header of an upload session: `0-<last byte>` (`0-0` when empty, as clients
/// expect).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}
