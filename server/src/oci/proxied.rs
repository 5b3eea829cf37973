//! `/v2` requests that the pull-through proxy answers (see `crate::proxy`): reads only; the
//! proxy namespace refuses pushes and deletes.

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::{Body, Request, Response};

use super::endpoint::OciEndpoint;
use super::response::DOCKER_CONTENT_DIGEST;
use crate::proxy::{BlobAnswer, Proxy, Target};
use crate::registry::{ErrorCode, RegistryError};
use crate::state::AppState;

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub async fn dispatch(
    state: &AppState,
    proxy: &Arc<Proxy>,
    target: &Target,
    endpoint: OciEndpoint,
    req: &Request,
) -> Result<Response, RegistryError> {
    let query = req.uri().query();
    match endpoint {
        OciEndpoint::GetManifest {
            reference, head, ..
        } => {
            let manifest = proxy.manifest(target, &reference).await?;
            let digest = manifest.link.digest.to_string();
            let body = if head {
                Body::empty()
            } else {
                Body::from_bytes(manifest.bytes)
            };
            let mut resp = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, manifest.link.media_type.as_str())
                .header(DOCKER_CONTENT_DIGEST, digest.as_str())
                .header(header::ETAG, format!("\"{digest}\""))
                .body(body);
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, manifest.link.size.into());
            Ok(resp)
        }
        OciEndpoint::GetBlob { digest, head, .. } => {
            let (size, body) = match proxy.blob(target, &digest, head).await? {
                BlobAnswer::Cached(read) => {
                    (Some(read.meta.size), crate::zero_copy::blob_body(req, read))
                }
                BlobAnswer::Streaming { size, body } => (size, Body::from_bytes_stream(body)),
            };
            let mut resp = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(DOCKER_CONTENT_DIGEST, digest.to_string())
                .body(if head { Body::empty() } else { body });
            if let Some(size) = size {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, size.into());
            }
            Ok(resp)
        }
        OciEndpoint::ListReferrers { digest, .. } => {
            let artifact_type = query_param(query, "artifactType");
            let index = proxy
                .referrers(target, &digest, artifact_type.as_deref())
                .await?;
            let mut resp = Response::builder()
                .status(StatusCode::OK)
                .content_type("application/vnd.oci.image.index.v1+json")
                .body(index);
            if artifact_type.is_some() {
                resp.headers_mut().insert(
                    "OCI-Filters-Applied",
                    poem::http::HeaderValue::from_static("artifactType"),
                );
            }
            Ok(resp)
        }
        OciEndpoint::ListTags { .. } => {
            let page = state.registry.list_tags(&target.local, None, None).await?;
            let body = serde_json::json!({ "name": target.local.as_str(), "tags": page.items });
            Ok(Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(body.to_string()))
        }
        _ => Err(
            RegistryError::new(ErrorCode::Unsupported, "the proxy namespace is read-only")
                .with_status(405)
                .with_allow("GET, HEAD"),
        ),
    }
}
