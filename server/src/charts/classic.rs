//! The classic Helm repository over the same charts: `GET /index.yaml` (every chart the caller
//! may pull) and `GET /<namespace>/index.yaml` (the charts whose OCI repository is
//! `<namespace>/<chart>`), `.json` forms, and downloads at `<namespace>/charts/<name>-<version>.tgz`
//! (`charts/<file>` for charts at the top level). ETag and If-None-Match are honoured.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use super::IndexEntry;
use super::index_yaml::{self, Format};
use crate::auth::Caller;
use crate::state::AppState;

/// What a classic-repository path asks for.
#[derive(Debug, PartialEq, Eq)]
enum ClassicRequest<'a> {
    Index {
        namespace: Option<&'a str>,
        format: Format,
    },
    Archive {
        namespace: &'a str,
        file: &'a str,
    },
}

fn parse(path: &str) -> Option<ClassicRequest<'_>> {
    let path = path.trim_start_matches('/');
    if let Some(ns) = index_namespace(path, "index.yaml") {
        return Some(ClassicRequest::Index {
            namespace: ns,
            format: Format::Yaml,
        });
    }
    if let Some(ns) = index_namespace(path, "index.json") {
        return Some(ClassicRequest::Index {
            namespace: ns,
            format: Format::Json,
        });
    }
    let (before, file) = path.rsplit_once('/')?;
    let namespace = if before == "charts" {
        ""
    } else {
        before.strip_suffix("/charts")?
    };
    (file.ends_with(".tgz") || file.ends_with(".tgz.prov"))
        .then_some(ClassicRequest::Archive { namespace, file })
}

/// `index.yaml` → the top level; `<ns>/index.yaml` → namespace `<ns>`.
fn index_namespace<'a>(path: &'a str, file: &str) -> Option<Option<&'a str>> {
    if path == file {
        Some(None)
    } else {
        path.strip_suffix(file)?.strip_suffix('/').map(Some)
    }
}

/// Serves the classic repository paths; anything else is 404.
#[handler]
pub async fn classic(req: &Request, Data(state): Data<&Arc<AppState>>) -> Response {
    let Some(request) = parse(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    if req.method() != poem::http::Method::GET && req.method() != poem::http::Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let caller = match state.access.identify_request(req).await {
        Ok(caller) => caller,
        Err(crate::auth::Denial::TooManyRequests(wait)) => {
            return Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(header::RETRY_AFTER, wait.as_secs().max(1))
                .body("too many failed login attempts");
        }
        Err(_) => return unauthorized(),
    };
    if matches!(caller, Caller::Anonymous) && !state.access.policy().anonymous_may_pull_somewhere()
    {
        return unauthorized();
    }
    let (generation, all) = state.charts.entries().await;
    let visible: Vec<Arc<IndexEntry>> = all
        .into_iter()
        .filter(|e| state.access.may_pull(&caller, &e.repository))
        .collect();
    match request {
        ClassicRequest::Index { namespace, format } => {
            let in_namespace: Vec<Arc<IndexEntry>> = visible
                .into_iter()
                .filter(|e| namespace.is_none_or(|ns| e.namespace() == ns))
                .collect();
            // URLs are relative to the index: `charts/<file>` in a namespace's own index,
            // `<namespace>/charts/<file>` in the top-level one.
            let url = |e: &IndexEntry| match namespace {
                Some(_) => format!("charts/{}", e.file_name()),
                None if e.namespace().is_empty() => format!("charts/{}", e.file_name()),
                None => format!("{}/charts/{}", e.namespace(), e.file_name()),
            };
            let rendered = state.charts.rendered.get_or_render(
                namespace.unwrap_or("/"),
                format,
                generation_for(generation, &in_namespace),
                || index_yaml::render(&in_namespace, format, url),
            );
            let if_none_match = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok());
            if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == rendered.etag)) {
                return Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .header(header::ETAG, rendered.etag.as_str())
                    .finish();
            }
            let content_type = match format {
                Format::Yaml => "application/x-yaml",
                Format::Json => "application/json",
            };
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::ETAG, rendered.etag.as_str())
                .header(header::CACHE_CONTROL, "no-cache")
                .body(rendered.body.clone())
        }
        ClassicRequest::Archive { namespace, file } => {
            let (chart_file, provenance) = match file.strip_suffix(".prov") {
                Some(tgz) => (tgz, true),
                None => (file, false),
            };
            let Some(entry) = visible
                .iter()
                .find(|e| e.namespace() == namespace && e.file_name() == chart_file)
            else {
                return plain(StatusCode::NOT_FOUND, "chart not found");
            };
            let digest = if provenance {
                match &entry.provenance_digest {
                    Some(d) => d.clone(),
                    None => return plain(StatusCode::NOT_FOUND, "chart has no provenance file"),
                }
            } else {
                entry.chart_digest.clone()
            };
            let Some(repo) = crate::registry::RepoName::parse(&entry.repository) else {
                return plain(StatusCode::NOT_FOUND, "chart not found");
            };
            match state.registry.get_blob(&repo, &digest, None).await {
                Ok(read) => {
                    let content_type = if provenance {
                        "application/pgp-signature"
                    } else {
                        "application/gzip"
                    };
                    let size = read.meta.size;
                    let body = if req.method() == poem::http::Method::HEAD {
                        Body::empty()
                    } else {
                        crate::zero_copy::blob_body(req, read)
                    };
                    let mut resp = Response::builder()
                        .status(StatusCode::OK)
                        .header(header::CONTENT_TYPE, content_type)
                        .header(header::CONTENT_LENGTH, size)
                        .header(header::ETAG, format!("\"{digest}\""))
                        .body(body);
                    if let Ok(v) =
                        HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
                    {
                        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                    }
                    resp
                }
                Err(e) if e.status == 404 => plain(StatusCode::NOT_FOUND, "chart not found"),
                Err(_) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "could not read the chart",
                ),
            }
        }
    }
}

/// The render-cache generation for a filtered view: the index generation, plus a digest of
/// which entries are visible (callers with different rights see different indexes).
fn generation_for(generation: u64, visible: &[Arc<IndexEntry>]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    generation.hash(&mut h);
    for e in visible {
        e.repository.hash(&mut h);
        e.tag.hash(&mut h);
    }
    h.finish()
}

fn plain(status: StatusCode, message: &str) -> Response {
    Response::builder().status(status).body(message.to_owned())
}

fn unauthorized() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, crate::auth::CHALLENGE)
        .body("authentication required")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse("/index.yaml"),
            Some(ClassicRequest::Index {
                namespace: None,
                format: Format::Yaml
            })
        );
        assert_eq!(
            parse("/team-a/charts/index.json"),
            Some(ClassicRequest::Index {
                namespace: Some("team-a/charts"),
                format: Format::Json
            })
        );
        assert_eq!(
            parse("/charts/x-1.0.0.tgz"),
            Some(ClassicRequest::Archive {
                namespace: "",
                file: "x-1.0.0.tgz"
            })
        );
        assert_eq!(
            parse("/team-a/charts/charts/x-1.0.0.tgz.prov"),
            Some(ClassicRequest::Archive {
                namespace: "team-a/charts",
                file: "x-1.0.0.tgz.prov"
            })
        );
        assert_eq!(parse("/favicon.ico"), None);
        assert_eq!(parse("/a/b/x.tgz"), None);
    }
}
