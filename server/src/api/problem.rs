//! Errors of the REST API as problem JSON (RFC 9457): `{type, title, status, detail}` with
//! content type `application/problem+json`, the same shape for every route and failure.

use poem::http::StatusCode;
use poem_openapi::{ApiResponse, Object, payload::Json};

/// A problem report.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI reference naming the problem type (`about:blank` for plain HTTP statuses).
    #[oai(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this occurrence.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: Some(detail.into()),
        }
    }
}

/// The error answers every authenticated route may give.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No or wrong credentials.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The caller may not do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource (or none the caller may see).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Conflicts with the current state (another job runs).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// Too many failed logins.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>),
    /// An internal failure.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// A backend is unavailable.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(Json(Problem::new(StatusCode::BAD_REQUEST, detail)))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(Json(Problem::new(StatusCode::FORBIDDEN, detail)))
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(Json(Problem::new(StatusCode::NOT_FOUND, detail)))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(Json(Problem::new(StatusCode::CONFLICT, detail)))
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable(Json(Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail)))
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::Internal(Json(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error while {context}"),
        )))
    }
}

/// Renders any error that reaches the API's edge (unknown route, unparsable body, failed
/// authentication extractor…) as problem JSON; answers that already are problem JSON (our
/// own [`ApiError`]s) pass unchanged.
pub fn problem_response(err: poem::Error) -> poem::Response {
    let status = err.status();
    let detail = err.to_string();
    let resp = err.into_response();
    let is_problem = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return resp;
    }
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut resp = poem::Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(body.to_string());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static(crate::auth::CHALLENGE),
        );
    }
    resp
}
