//! The REST API (`/api/v1/…`), described by OpenAPI generated with poem-openapi: the document
//! is served at `/api/openapi.json` (a committed copy lives in `openapi/openapi.json`, kept in
//! sync by a test), Swagger UI at `/api/docs`. Errors are problem JSON.

mod backups;
pub(crate) mod charts;
mod gc;
mod problem;
mod proxy;
pub(crate) mod repositories;
mod security;
mod system;
mod text;
mod tokens;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

/// Operation groups in the document.
#[derive(Debug, Tags)]
pub enum ApiTags {
    /// The registry itself.
    System,
    /// API tokens for CI and automation.
    Tokens,
    /// Chart search and details.
    Charts,
    /// Repositories, tags and manifests.
    Repositories,
    /// The pull-through proxy/cache.
    Proxy,
    /// Backups: snapshots in a bucket, restore, verify.
    Backups,
    /// Garbage collection: what no tag reaches any more.
    Gc,
}

type Apis = (
    system::SystemApi,
    tokens::TokensApi,
    charts::ChartsApi,
    repositories::RepositoriesApi,
    proxy::ProxyApi,
    backups::BackupsApi,
    gc::GcApi,
);

/// The OpenAPI service (shared by the server and the document test).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            system::SystemApi,
            tokens::TokensApi,
            charts::ChartsApi,
            repositories::RepositoriesApi,
            proxy::ProxyApi,
            backups::BackupsApi,
            gc::GcApi,
        ),
        "oci-storage",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Management API of oci-storage. Authenticate with HTTP Basic: a username and its password or API token.")
}

/// The OpenAPI document as JSON.
pub fn document() -> String {
    service().spec()
}

/// The `/api` routes (mounted without stripping the prefix): the operations, the document,
/// and Swagger UI.
pub fn routes() -> impl Endpoint {
    let service = service();
    let ui = service.swagger_ui();
    let spec = service.spec_endpoint();
    Route::new()
        .nest_no_strip("/api/v1", service.around(limit_body))
        .at("/api/openapi.json", spec)
        .nest("/api/docs", ui)
        // Everything else under /api is the ChartMuseum-compatible API.
        .at("/api/*path", crate::charts::chartmuseum::chartmuseum)
        .catch_all_error(|err| async move { problem::problem_response(err) })
}

/// Largest request body of the REST API: its operations take small JSON documents (a token's
/// patterns, a tag copy). Longer bodies get 413 when declared, or fail to parse (400) when
/// sent without a length.
const MAX_BODY_BYTES: usize = 64 * 1024;

async fn limit_body<E: Endpoint>(
    ep: std::sync::Arc<E>,
    mut req: poem::Request,
) -> poem::Result<poem::Response> {
    use futures_util::StreamExt as _;
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        let mut resp = problem::problem_response(poem::Error::from_string(
            format!("the request body is over {MAX_BODY_BYTES} bytes"),
            poem::http::StatusCode::PAYLOAD_TOO_LARGE,
        ));
        // The body is not read, so the connection cannot carry another request.
        resp.headers_mut().insert(
            poem::http::header::CONNECTION,
            poem::http::HeaderValue::from_static("close"),
        );
        return Ok(resp);
    }
    let mut seen = 0;
    let limited = req.take_body().into_bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > MAX_BODY_BYTES {
            return Err(std::io::Error::other("the request body is too large"));
        }
        Ok(chunk)
    });
    req.set_body(poem::Body::from_bytes_stream(limited));
    ep.call(req).await.map(poem::IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    /// The committed document must match what the code generates: API changes show up in
    /// review. Regenerate with `UPDATE_OPENAPI=1 cargo test -p oci-storage-server openapi`.
    #[test]
    fn committed_openapi_document_is_current() {
        let generated = super::document();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi/openapi.json is out of date: run UPDATE_OPENAPI=1 cargo test -p oci-storage-server openapi"
        );
    }
}
