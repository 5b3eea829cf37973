//! Reading a posted form: a small body limit (the forms here carry a few short fields), and one
//! answer for a form that cannot be read, the same 403 page as a wrong CSRF token (a body that
//! does not decode cannot be shown to come from this site). Missing fields read as empty, so a
//! form without its token reaches the token check and is refused there.

use poem::http::{StatusCode, header};
use poem::{FromRequest, Request, RequestBody, Response};
use serde::de::DeserializeOwned;

/// Largest form body accepted (login: username, password and token; retag: a few names).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// A decoded `application/x-www-form-urlencoded` body.
#[derive(Debug)]
pub struct PostedForm<T>(pub T);

impl<'a, T: DeserializeOwned> FromRequest<'a> for PostedForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
            return Err(poem::Error::from_response(too_large()));
        }
        let bytes = body
            .take()?
            .into_bytes_limit(MAX_FORM_BYTES)
            .await
            .map_err(|_| poem::Error::from_response(too_large()))?;
        serde_urlencoded::from_bytes(&bytes)
            .map(PostedForm)
            .map_err(|_| poem::Error::from_response(super::csrf_refused()))
    }
}

/// 413; the rest of the body is not read, so the connection cannot carry another request.
fn too_large() -> Response {
    Response::builder()
        .status(StatusCode::PAYLOAD_TOO_LARGE)
        .header(header::CONNECTION, "close")
        .content_type("text/plain; charset=utf-8")
        .body("This form is larger than any form of this site.")
}
