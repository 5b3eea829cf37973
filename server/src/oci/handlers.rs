//! One handler per OCI operation: read what the request carries (headers, query, body), call
//! the registry service, and shape the answer the spec prescribes.

use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::BytesMut;
use futures_util::StreamExt as _;
use oci_storage_core::{ByteStream, Digest, DigestAlgorithm};
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Request, Response};

use super::endpoint::OciEndpoint;
use super::range::{RangeRequest, parse_content_range, parse_range};
use super::response::{DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, upload_range};
use crate::auth::Caller;
use crate::registry::manifest_doc::OCI_INDEX;
use crate::registry::{
    ErrorCode, Page, PutManifest, Reference, RegistryError, RepoName, Tag, UploadChunk,
};
use crate::state::AppState;
use crate::zero_copy;

type Result<T> = std::result::Result<T, RegistryError>;

/// Most distinct `?tag=` values on one manifest push (OCI 1.1 lets a push name several tags).
const MAX_TAGS_PER_PUSH: usize = 64;

pub async fn dispatch(
    state: &AppState,
    req: &Request,
    body: Body,
    endpoint: OciEndpoint,
    caller: &Caller,
) -> Result<Response> {
    // An error can be answered before the body was read to its end (storage unavailable, an
    // unknown session, a manifest over the limit…): the rest is read and dropped then, or a
    // client still sending it would see the connection reset instead of the error answer.
    let body = Drainable::new(body);
    let result = dispatch_endpoint(state, req, body.body(), endpoint, caller).await;
    if result.is_err() {
        body.drain().await;
    }
    result
}

async fn dispatch_endpoint(
    state: &AppState,
    req: &Request,
    body: Body,
    endpoint: OciEndpoint,
    caller: &Caller,
) -> Result<Response> {
    let registry = &state.registry;
    let query = Query::of(req);
    match endpoint {
        OciEndpoint::ApiVersion => Ok(json_response(StatusCode::OK, &serde_json::json!({}))),
        OciEndpoint::Catalog => {
            let (n, last) = query.pagination()?;
            let page = visible_catalog(state, caller, n, last).await?;
            let body = serde_json::json!({ "repositories": page.items });
            Ok(paged(
                json_response(StatusCode::OK, &body),
                "/v2/_catalog",
                n,
                &page,
            ))
        }
        OciEndpoint::ListTags { name } => {
            let (n, last) = query.pagination()?;
            let page = registry.list_tags(&name, n, last).await?;
            let body = serde_json::json!({ "name": name.as_str(), "tags": page.items });
            let path = format!("/v2/{name}/tags/list");
            Ok(paged(json_response(StatusCode::OK, &body), &path, n, &page))
        }
        OciEndpoint::GetManifest {
            name,
            reference,
            head,
        } => get_manifest(state, &name, &reference, head).await,
        OciEndpoint::PutManifest { name, reference } => {
            put_manifest(state, req, body, &query, name, reference).await
        }
        OciEndpoint::DeleteManifest { name, reference } => {
            registry
                .delete_manifest(&name, &reference)
                .await
                .map_err(|e| deletes_disabled(e, "GET, HEAD, PUT"))?;
            match &reference {
                Reference::Tag(tag) => state.charts.tag_deleted(&name, tag).await,
                Reference::Digest(digest) => state.charts.manifest_deleted(&name, digest).await,
            }
            Ok(status(StatusCode::ACCEPTED))
        }
        OciEndpoint::GetBlob { name, digest, head } => {
            get_blob(state, req, &name, &digest, head).await
        }
        OciEndpoint::DeleteBlob { name, digest } => {
            registry
                .delete_blob(&name, &digest)
                .await
                .map_err(|e| deletes_disabled(e, "GET, HEAD"))?;
            Ok(status(StatusCode::ACCEPTED))
        }
        OciEndpoint::StartUpload { name } => {
            start_upload(state, caller, req, body, &query, name).await
        }
        OciEndpoint::UploadStatus { name, id } => {
            let status = registry.upload_status(&name, &id).await?;
            Ok(upload_response(
                StatusCode::NO_CONTENT,
                &name,
                &status.id,
                status.offset,
            ))
        }
        OciEndpoint::PatchUpload { name, id } => {
            let chunk = chunk_of(req, body, true)?;
            let status = registry.upload_chunk(&name, &id, chunk).await?;
            Ok(upload_response(
                StatusCode::ACCEPTED,
                &name,
                &status.id,
                status.offset,
            ))
        }
        OciEndpoint::FinishUpload { name, id } => {
            let digest = query.digest()?.ok_or_else(|| {
                RegistryError::new(
                    ErrorCode::DigestInvalid,
                    "the digest query parameter is required",
                )
            })?;
            let last = if has_body(req) {
                Some(chunk_of(req, body, false)?)
            } else {
                None
            };
            registry.finish_upload(&name, &id, &digest, last).await?;
            Ok(blob_created(&name, &digest))
        }
        OciEndpoint::CancelUpload { name, id } => {
            registry.cancel_upload(&name, &id).await?;
            Ok(status(StatusCode::NO_CONTENT))
        }
        OciEndpoint::ListReferrers { name, digest } => {
            let artifact_type = query.get("artifactType");
            let manifests = registry.referrers(&name, &digest, artifact_type).await?;
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": manifests,
            });
            let mut resp = json_response(StatusCode::OK, &index);
            set(&mut resp, header::CONTENT_TYPE.as_str(), OCI_INDEX);
            if artifact_type.is_some() {
                set(&mut resp, "OCI-Filters-Applied", "artifactType");
            }
            Ok(resp)
        }
    }
}

async fn get_manifest(
    state: &AppState,
    name: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<Response> {
    let (link, body) = if head {
        let link = state.registry.resolve_manifest(name, reference).await?;
        (link, Body::empty())
    } else {
        let manifest = state.registry.get_manifest(name, reference).await?;
        (manifest.link, Body::from_bytes(manifest.bytes))
    };
    let digest = link.digest.to_string();
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, link.media_type.as_str())
        .header(header::CONTENT_LENGTH, link.size)
        .header(DOCKER_CONTENT_DIGEST, digest.as_str())
        .header(header::ETAG, format!("\"{digest}\""))
        .body(body);
    if head {
        // HEAD carries the length of what GET would send.
        set(
            &mut resp,
            header::CONTENT_LENGTH.as_str(),
            &link.size.to_string(),
        );
    }
    Ok(resp)
}

async fn put_manifest(
    state: &AppState,
    req: &Request,
    body: Body,
    query: &Query,
    name: RepoName,
    reference: Reference,
) -> Result<Response> {
    let max = state.registry.settings().max_manifest_bytes;
    let too_large = || {
        RegistryError::new(
            ErrorCode::SizeInvalid,
            format!("manifest exceeds the limit of {max} bytes"),
        )
        .with_status(413)
    };
    let mut stream = body_stream(body);
    if content_length(req).is_some_and(|len| len > max) {
        // The body is drained by `dispatch`, as for every error.
        return Err(too_large());
    }
    let mut bytes = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::new(
                ErrorCode::ManifestInvalid,
                format!("manifest body could not be read: {e}"),
            )
        })?;
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    let bytes = bytes.freeze();
    let mut extra_tags: Vec<Tag> = Vec::new();
    for value in query.all("tag") {
        let tag = Tag::parse(value).ok_or_else(|| {
            RegistryError::new(ErrorCode::ManifestInvalid, "invalid tag")
                .with_detail(serde_json::json!({ "tag": value }))
        })?;
        if !extra_tags.contains(&tag) {
            extra_tags.push(tag);
        }
        // Each tag is a write; a query of thousands would turn one request into thousands.
        if extra_tags.len() > MAX_TAGS_PER_PUSH {
            return Err(RegistryError::new(
                ErrorCode::ManifestInvalid,
                format!("too many tags in one push (at most {MAX_TAGS_PER_PUSH})"),
            ));
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let chart = state.charts.inspect_push(&name, &bytes).await?;
    let outcome = state
        .registry
        .put_manifest(
            &name,
            PutManifest {
                reference,
                content_type,
                bytes,
                extra_tags,
            },
        )
        .await?;
    state
        .charts
        .tags_written(&name, &outcome.digest, &outcome.tags, chart)
        .await?;
    let digest = outcome.digest.to_string();
    let mut resp = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header(DOCKER_CONTENT_DIGEST, digest.as_str())
        .header(header::CONTENT_LENGTH, 0)
        .finish();
    if let Some(subject) = outcome.subject {
        set(&mut resp, "OCI-Subject", &subject.to_string());
    }
    for tag in &outcome.tags {
        if let Ok(v) = HeaderValue::from_str(tag.as_str()) {
            resp.headers_mut().append("OCI-Tag", v);
        }
    }
    Ok(resp)
}

async fn get_blob(
    state: &AppState,
    req: &Request,
    name: &RepoName,
    digest: &Digest,
    head: bool,
) -> Result<Response> {
    let registry = &state.registry;
    if !head && let Some(url) = registry.blob_redirect(name, digest).await? {
        // The store serves the bytes (and any Range) itself; HEAD stays here, as clients
        // expect its headers from the registry.
        return Ok(Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(DOCKER_CONTENT_DIGEST, digest.to_string())
            .finish());
    }
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    if head || range_header.is_some() {
        let meta = registry.blob_meta(name, digest).await?;
        if head {
            // blob_headers already carries Content-Length: a second one makes hyper drop
            // the answer (the client sees the connection close).
            return Ok(blob_headers(StatusCode::OK, digest, meta.size).body(Body::empty()));
        }
        match parse_range(range_header, meta.size) {
            RangeRequest::Whole => {}
            RangeRequest::Unsatisfiable => {
                return Ok(Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", meta.size))
                    .finish());
            }
            RangeRequest::Partial(range) => {
                let read = registry.get_blob(name, digest, Some(range)).await?;
                let len = read.range.end - read.range.start;
                let content_range = format!(
                    "bytes {}-{}/{}",
                    read.range.start,
                    read.range.end.saturating_sub(1),
                    read.meta.size
                );
                return Ok(blob_headers(StatusCode::PARTIAL_CONTENT, digest, len)
                    .header(header::CONTENT_RANGE, content_range)
                    .body(zero_copy::blob_body(req, read)));
            }
        }
    }
    let read = registry.get_blob(name, digest, None).await?;
    let size = read.meta.size;
    Ok(blob_headers(StatusCode::OK, digest, size).body(zero_copy::blob_body(req, read)))
}

fn blob_headers(status: StatusCode, digest: &Digest, len: u64) -> poem::ResponseBuilder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
}

async fn start_upload(
    state: &AppState,
    caller: &Caller,
    req: &Request,
    body: Body,
    query: &Query,
    name: RepoName,
) -> Result<Response> {
    let registry = &state.registry;
    if let (Some(mount), Some(from)) = (query.get("mount"), query.get("from")) {
        let digest: Option<Digest> = mount.parse().ok();
        let from = RepoName::parse(from);
        // Mounting reads `from`: only for callers who may pull it (otherwise a normal upload,
        // so the answer says nothing about what `from` holds).
        let readable = from.as_ref().is_some_and(|f| {
            state
                .access
                .authorize(caller, Some(f.as_str()), crate::auth::Action::Pull)
                .is_ok()
        });
        if let (Some(digest), Some(from), true) = (digest, from, readable)
            && registry.mount_blob(&name, &digest, &from).await?
        {
            return Ok(blob_created(&name, &digest));
        }
        // Cannot mount: fall back to a normal upload session, as the spec allows.
    }
    if let Some(digest) = query.digest()? {
        let len = content_length(req);
        registry
            .upload_monolithic(&name, &digest, body_stream(body), len)
            .await?;
        return Ok(blob_created(&name, &digest));
    }
    let algorithm = match query.get("digest-algorithm") {
        None => DigestAlgorithm::Sha256,
        Some(a) => a.parse().map_err(|e: oci_storage_core::DigestError| {
            RegistryError::new(ErrorCode::DigestInvalid, e.to_string())
        })?,
    };
    let status = registry.start_upload(&name, algorithm).await?;
    Ok(upload_response(StatusCode::ACCEPTED, &name, &status.id, 0))
}

/// A 405 from a delete (deletes are disabled) names the methods that remain.
fn deletes_disabled(err: RegistryError, remaining: &'static str) -> RegistryError {
    if err.status == 405 {
        err.with_allow(remaining)
    } else {
        err
    }
}

/// A catalog page of only what the caller may pull: keeps reading storage pages until `n`
/// visible names are found (a page of hidden names must not end the listing early).
async fn visible_catalog(
    state: &AppState,
    caller: &Caller,
    n: Option<usize>,
    last: Option<&str>,
) -> Result<Page> {
    let mut items = Vec::new();
    let mut cursor = last.map(str::to_owned);
    loop {
        let want = n.map(|n| n.saturating_sub(items.len()));
        if want == Some(0) {
            // Full: is anything visible left after the last name?
            let probe = state.registry.catalog(Some(1), cursor.as_deref()).await?;
            return Ok(Page {
                items,
                more: !probe.items.is_empty(),
            });
        }
        let page = state
            .registry
            .catalog(want.map(|w| w.max(100)), cursor.as_deref())
            .await?;
        for name in &page.items {
            cursor = Some(name.clone());
            if state.access.may_pull(caller, name) {
                items.push(name.clone());
                if n.is_some_and(|n| items.len() == n) {
                    break;
                }
            }
        }
        if !page.more && n.is_none_or(|n| items.len() < n) {
            return Ok(Page { items, more: false });
        }
        if page.items.is_empty() {
            return Ok(Page { items, more: false });
        }
    }
}

/// Reads an upload chunk's declared position and length; `range_required` is false for the
/// last chunk of a PUT.
pub(super) fn chunk_of(req: &Request, body: Body, patch: bool) -> Result<UploadChunk> {
    let content_range = req
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok());
    let (start, len) = match content_range {
        Some(h) => {
            let (start, len) = parse_content_range(h).ok_or_else(|| {
                RegistryError::new(ErrorCode::BlobUploadInvalid, "malformed Content-Range")
                    .with_status(416)
            })?;
            (Some(start), Some(len))
        }
        None => (None, content_length(req)),
    };
    if let (Some(range_len), Some(declared)) = (len, content_length(req))
        && content_range.is_some()
        && range_len != declared
    {
        return Err(RegistryError::new(
            ErrorCode::BlobUploadInvalid,
            "Content-Range and Content-Length disagree",
        )
        .with_status(if patch { 416 } else { 400 }));
    }
    Ok(UploadChunk {
        start,
        len,
        body: body_stream(body),
    })
}

/// Most bytes of a refused request body that are read and thrown away.
const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;

/// A request body passed on to a handler, whose unread rest can still be drained when the
/// handler answers an error.
struct Drainable(Arc<Mutex<Option<ByteStream>>>);

impl Drainable {
    fn new(body: Body) -> Self {
        Self(Arc::new(Mutex::new(Some(body_stream(body)))))
    }

    /// A body reading from this one.
    fn body(&self) -> Body {
        let shared = self.0.clone();
        Body::from_bytes_stream(futures_util::stream::poll_fn(move |cx| {
            match shared.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                Some(stream) => stream.poll_next_unpin(cx),
                None => Poll::Ready(None),
            }
        }))
    }

    /// Reads and drops what the handler left unread (see [`discard`]).
    async fn drain(self) {
        let rest = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rest) = rest {
            discard(rest).await;
        }
    }
}

/// Reads and drops the rest of a refused request body (up to [`DISCARD_LIMIT`]): a client
/// still sending it would otherwise see the connection reset instead of the error answer.
async fn discard(mut body: ByteStream) {
    let mut read = 0u64;
    while read < DISCARD_LIMIT {
        match body.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            _ => break,
        }
    }
}

fn has_body(req: &Request) -> bool {
    match content_length(req) {
        Some(len) => len > 0,
        None => req.headers().contains_key(header::TRANSFER_ENCODING),
    }
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_bytes_stream())
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn blob_created(name: &RepoName, digest: &Digest) -> Response {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(header::CONTENT_LENGTH, 0)
        .finish()
}

fn upload_response(status: StatusCode, name: &RepoName, id: &str, offset: u64) -> Response {
    Response::builder()
        .status(status)
        .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header(header::RANGE, upload_range(offset))
        .header(DOCKER_UPLOAD_UUID, id)
        .header(header::CONTENT_LENGTH, 0)
        .finish()
}

fn status(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, 0)
        .finish()
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(value.to_string())
}

fn set(resp: &mut Response, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        poem::http::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        resp.headers_mut().insert(name, value);
    }
}

/// Adds `Link: <path?n=&last=>; rel="next"` when more items follow.
fn paged(mut resp: Response, path: &str, n: Option<usize>, page: &Page) -> Response {
    if let (true, Some(last)) = (page.more, page.items.last()) {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(n) = n {
            query.append_pair("n", &n.to_string());
        }
        query.append_pair("last", last);
        let link = format!("<{path}?{}>; rel=\"next\"", query.finish());
        set(&mut resp, header::LINK.as_str(), &link);
    }
    resp
}

/// The query string, decoded; keys may repeat (`?tag=a&tag=b`).
struct Query(Vec<(String, String)>);

impl Query {
    fn of(req: &Request) -> Self {
        let pairs = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Self(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn digest(&self) -> Result<Option<Digest>> {
        self.get("digest")
            .map(|d| {
                d.parse().map_err(|e: oci_storage_core::DigestError| {
                    RegistryError::new(ErrorCode::DigestInvalid, format!("invalid digest: {e}"))
                        .with_detail(serde_json::json!({ "digest": d }))
                })
            })
            .transpose()
    }

    fn pagination(&self) -> Result<(Option<usize>, Option<&str>)> {
        let n = self
            .get("n")
            .map(|n| {
                n.parse::<usize>().map_err(|_| {
                    RegistryError::new(
                        ErrorCode::PaginationNumberInvalid,
                        "invalid number of results requested",
                    )
                })
            })
            .transpose()?;
        Ok((n, self.get("last")))
    }
}
