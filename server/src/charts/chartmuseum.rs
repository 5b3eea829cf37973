//! The ChartMuseum-compatible API (what `helm cm-push` and pipelines call), over the same
//! charts: `GET /api[/<ns>]/charts[/<name>[/<version>]]`, `HEAD` of those, `POST …/charts`
//! (raw `.tgz` body, or multipart fields `chart` and `prov`; 409 if the version exists unless
//! `?force`), `POST …/prov`, `DELETE …/charts/<name>/<version>`. A chart uploaded here becomes an
//! OCI artifact (`helm pull oci://…` finds it); top-level uploads go to `helm.defaultNamespace`.

use std::sync::Arc;

use bytes::Bytes;
use poem::http::{Method, StatusCode, header};
use poem::web::{Data, Multipart};
use poem::{Body, FromRequest, Request, RequestBody, Response, handler};

use super::{IndexEntry, PublishError};
use crate::auth::{Action, Caller, Denial};
use crate::registry::{Reference, RepoName, Tag};
use crate::state::AppState;

/// The operation a ChartMuseum path names.
#[derive(Debug, PartialEq, Eq)]
enum Op<'a> {
    Charts {
        ns: &'a str,
    },
    Chart {
        ns: &'a str,
        name: &'a str,
    },
    Version {
        ns: &'a str,
        name: &'a str,
        version: &'a str,
    },
    Prov {
        ns: &'a str,
    },
}

fn parse(rest: &str) -> Option<Op<'_>> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let n = segments.len();
    let ns_of = |upto: usize| -> &str {
        if upto == 0 {
            ""
        } else {
            let end: usize = segments[..upto].iter().map(|s| s.len() + 1).sum::<usize>() - 1;
            &rest.trim_start_matches('/')[..end]
        }
    };
    match segments.as_slice() {
        [.., "prov"] => Some(Op::Prov { ns: ns_of(n - 1) }),
        [.., "charts"] => Some(Op::Charts { ns: ns_of(n - 1) }),
        [.., "charts", name] => Some(Op::Chart {
            ns: ns_of(n - 2),
            name,
        }),
        [.., "charts", name, version] => Some(Op::Version {
            ns: ns_of(n - 3),
            name,
            version,
        }),
        _ => None,
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(value.to_string())
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }))
}

/// A chart version as ChartMuseum lists it: Chart.yaml fields plus urls, created, digest.
fn version_json(e: &IndexEntry, root_listing: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(&e.metadata).expect("metadata serializes");
    let url = if root_listing && !e.namespace().is_empty() {
        format!("{}/charts/{}", e.namespace(), e.file_name())
    } else {
        format!("charts/{}", e.file_name())
    };
    value["urls"] = serde_json::json!([url]);
    value["created"] = e.created.clone().into();
    value["digest"] = e.chart_digest.hex().into();
    value
}

/// Serves `/api/…` paths that are not the REST API.
#[handler]
pub async fn chartmuseum(req: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let rest = req.uri().path().strip_prefix("/api").unwrap_or_default();
    let Some(op) = parse(rest) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let caller = match state.access.identify_request(req).await {
        Ok(caller) => caller,
        Err(crate::auth::Denial::TooManyRequests(wait)) => {
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed login attempts",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
            return resp;
        }
        Err(_) => return unauthorized(),
    };
    let method = req.method().clone();
    match (op, method) {
        (Op::Charts { ns }, Method::GET | Method::HEAD) => {
            let entries = visible(state, &caller, ns, None).await;
            let mut map = serde_json::Map::new();
            for e in &entries {
                map.entry(e.metadata.name.clone())
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()))
                    .as_array_mut()
                    .expect("arrays")
                    .push(version_json(e, ns.is_empty()));
            }
            if matches!(caller, Caller::Anonymous)
                && !state.access.policy().anonymous_may_pull_somewhere()
            {
                return unauthorized();
            }
            json(StatusCode::OK, serde_json::Value::Object(map))
        }
        (Op::Chart { ns, name }, Method::GET | Method::HEAD) => {
            let entries = visible(state, &caller, ns, Some(name)).await;
            if entries.is_empty() {
                return not_found_or_unauthorized(&caller, "chart not found");
            }
            let list: Vec<_> = entries
                .iter()
                .map(|e| version_json(e, ns.is_empty()))
                .collect();
            json(StatusCode::OK, serde_json::Value::Array(list))
        }
        (Op::Version { ns, name, version }, Method::GET | Method::HEAD) => {
            let entries = visible(state, &caller, ns, Some(name)).await;
            match entries.iter().find(|e| e.metadata.version == version) {
                Some(e) => json(StatusCode::OK, version_json(e, ns.is_empty())),
                None => not_found_or_unauthorized(&caller, "chart version not found"),
            }
        }
        (Op::Version { ns, name, version }, Method::DELETE) => {
            delete(state, &caller, ns, name, version).await
        }
        (Op::Charts { ns }, Method::POST) => upload(state, &caller, req, body, ns, false).await,
        (Op::Prov { ns }, Method::POST) => upload(state, &caller, req, body, ns, true).await,
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// Chart versions the caller may pull, in a namespace (`""`: all), newest first.
async fn visible(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    name: Option<&str>,
) -> Vec<Arc<IndexEntry>> {
    let (_, all) = state.charts.entries().await;
    let mut entries: Vec<Arc<IndexEntry>> = all
        .into_iter()
        .filter(|e| ns.is_empty() || e.namespace() == ns)
        .filter(|e| name.is_none_or(|n| e.metadata.name == n))
        .filter(|e| state.access.may_pull(caller, &e.repository))
        .collect();
    entries.sort_by(|a, b| {
        let va = semver::Version::parse(&a.metadata.version).ok();
        let vb = semver::Version::parse(&b.metadata.version).ok();
        a.metadata.name.cmp(&b.metadata.name).then(vb.cmp(&va))
    });
    entries
}

fn target_namespace<'a>(state: &'a AppState, ns: &'a str) -> &'a str {
    if ns.is_empty() {
        &state.charts.config().default_namespace
    } else {
        ns
    }
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    name: &str,
    version: &str,
) -> Response {
    let ns = target_namespace(state, ns);
    let repo_path = format!("{ns}/{name}");
    let (Some(repo), Some(tag)) = (
        RepoName::parse(&repo_path),
        Tag::parse(&version.replace('+', "_")),
    ) else {
        return error(StatusCode::NOT_FOUND, "chart version not found");
    };
    if let Err(denial) = state
        .access
        .authorize(caller, Some(repo.as_str()), Action::Delete)
    {
        return denied(denial);
    }
    if state.is_proxy_cache(&repo) {
        return error(StatusCode::FORBIDDEN, "the proxy cache is read-only");
    }
    if state
        .charts
        .find(repo.as_str(), tag.as_str())
        .await
        .is_none()
    {
        return error(StatusCode::NOT_FOUND, "chart version not found");
    }
    match state
        .registry
        .delete_manifest(&repo, &Reference::Tag(tag.clone()))
        .await
    {
        Ok(()) => {
            state.charts.tag_deleted(&repo, &tag).await;
            json(StatusCode::OK, serde_json::json!({ "deleted": true }))
        }
        Err(e) if e.status == 404 => error(StatusCode::NOT_FOUND, "chart version not found"),
        Err(e) => error(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &e.message,
        ),
    }
}

/// Most fields read from an upload form (ChartMuseum's clients send one or two).
const MAX_MULTIPART_FIELDS: usize = 8;
/// Bytes a form may hold beyond the chart size limit (provenance file, other fields).
const MULTIPART_EXTRA_BYTES: usize = 1024 * 1024;

/// Reads an upload: a multipart form (`chart`, `prov`) or a raw body.
async fn read_upload(
    req: &Request,
    body: Body,
    limit: usize,
    prov_only: bool,
) -> Result<(Option<Bytes>, Option<Bytes>), Response> {
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, "upload is too large");
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let bytes = body
            .into_bytes_limit(limit)
            .await
            .map_err(|_| too_large())?;
        return Ok(if prov_only {
            (None, Some(bytes))
        } else {
            (Some(bytes), None)
        });
    }
    let mut request_body = RequestBody::new(body);
    let mut form = Multipart::from_request(req, &mut request_body)
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("invalid multipart form: {e}"),
            )
        })?;
    let invalid = |e: &dyn std::fmt::Display| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("invalid multipart form: {e}"),
        )
    };
    // The whole form is bounded, not only each field: a chart, its provenance file (a few
    // KiB) and a handful of other fields that are read and ignored.
    let mut left = limit + MULTIPART_EXTRA_BYTES;
    let (mut chart, mut prov) = (None, None);
    for _ in 0..=MAX_MULTIPART_FIELDS {
        let Some(field) = form.next_field().await.map_err(|e| invalid(&e))? else {
            return Ok((chart, prov));
        };
        let name = field.name().map(str::to_owned);
        let mut data = Vec::new();
        let mut reader = field.into_async_read();
        use tokio::io::AsyncReadExt;
        let allowed = left.min(limit);
        let read = (&mut reader)
            .take(allowed as u64 + 1)
            .read_to_end(&mut data)
            .await
            .map_err(|e| invalid(&e))?;
        if read > allowed {
            return Err(too_large());
        }
        left -= read;
        match name.as_deref() {
            Some("chart") => chart = Some(Bytes::from(data)),
            Some("prov") => prov = Some(Bytes::from(data)),
            _ => {}
        }
    }
    Err(error(
        StatusCode::BAD_REQUEST,
        &format!("invalid multipart form: more than {MAX_MULTIPART_FIELDS} fields"),
    ))
}

async fn upload(
    state: &AppState,
    caller: &Caller,
    req: &Request,
    body: Body,
    ns: &str,
    prov_only: bool,
) -> Response {
    let force = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "force" || p.starts_with("force=") && p != "force=false")
    });
    let limit = state.charts.config().max_chart_bytes as usize;
    let (chart, prov) = match read_upload(req, body, limit, prov_only).await {
        Ok(parts) => parts,
        Err(resp) => return resp,
    };
    let ns = target_namespace(state, ns).to_owned();
    let (archive, force) = match (chart, prov_only) {
        (Some(archive), _) => (archive, force),
        (None, true) => {
            // A provenance file alone: attach it to the chart whose archive it signs.
            let Some(prov) = &prov else {
                return error(StatusCode::BAD_REQUEST, "no provenance file in the request");
            };
            match archive_signed_by(state, caller, &ns, prov).await {
                Ok(archive) => (archive, true),
                Err(resp) => return resp,
            }
        }
        (None, false) => return error(StatusCode::BAD_REQUEST, "no chart in the request"),
    };
    // Authorised against the repository the chart lands in, once the archive is read.
    let authorize = |repo: &RepoName| {
        if state.is_proxy_cache(repo) {
            return Err(PublishError::Denied(Denial::Denied));
        }
        state
            .access
            .authorize(caller, Some(repo.as_str()), Action::Push)
            .map_err(PublishError::Denied)
    };
    match state
        .charts
        .publish(&ns, archive, prov, force, authorize)
        .await
    {
        Ok(_) => json(StatusCode::CREATED, serde_json::json!({ "saved": true })),
        Err(PublishError::Denied(denial)) => denied(denial),
        Err(PublishError::Exists) => error(StatusCode::CONFLICT, "file already exists"),
        Err(PublishError::Invalid(message)) => error(StatusCode::BAD_REQUEST, &message),
        Err(PublishError::Registry(e)) => error(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &e.message,
        ),
        Err(PublishError::Internal(message)) => {
            tracing::error!(error = %message, "chart upload failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not store the chart",
            )
        }
    }
}

/// Finds the stored archive a provenance file signs (by the `files:` digest it carries).
async fn archive_signed_by(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    prov: &[u8],
) -> Result<Bytes, Response> {
    let text = String::from_utf8_lossy(prov);
    let signed: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (file, digest) = l.trim().split_once(": sha256:")?;
            Some((file.to_owned(), digest.trim().to_owned()))
        })
        .collect();
    let (_, all) = state.charts.entries().await;
    let entry = all
        .into_iter()
        .filter(|e| e.namespace() == ns && state.access.may_pull(caller, &e.repository))
        .find(|e| {
            signed
                .iter()
                .any(|(file, digest)| *file == e.file_name() && digest == e.chart_digest.hex())
        })
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "no stored chart matches this provenance file",
            )
        })?;
    let bytes = state
        .registry
        .storage()
        .as_ref()
        .get(&crate::registry::layout::blob(&entry.chart_digest), None)
        .await
        .map_err(|_| error(StatusCode::NOT_FOUND, "chart not found"))?;
    let mut buf = Vec::new();
    let mut body = bytes.body;
    use futures_util::StreamExt;
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.map_err(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not read the chart",
            )
        })?);
    }
    Ok(Bytes::from(buf))
}

fn not_found_or_unauthorized(caller: &Caller, message: &str) -> Response {
    if matches!(caller, Caller::Anonymous) {
        unauthorized()
    } else {
        error(StatusCode::NOT_FOUND, message)
    }
}

fn denied(denial: crate::auth::Denial) -> Response {
    match denial {
        crate::auth::Denial::Unauthenticated => unauthorized(),
        _ => error(StatusCode::FORBIDDEN, "denied"),
    }
}

fn unauthorized() -> Response {
    let mut resp = error(StatusCode::UNAUTHORIZED, "authentication required");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        poem::http::HeaderValue::from_static(crate::auth::CHALLENGE),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse("/charts"), Some(Op::Charts { ns: "" }));
        assert_eq!(parse("/team/a/charts"), Some(Op::Charts { ns: "team/a" }));
        assert_eq!(parse("/charts/x"), Some(Op::Chart { ns: "", name: "x" }));
        assert_eq!(
            parse("/team/charts/x/1.0.0"),
            Some(Op::Version {
                ns: "team",
                name: "x",
                version: "1.0.0"
            })
        );
        assert_eq!(parse("/prov"), Some(Op::Prov { ns: "" }));
        assert_eq!(parse("/v1/unknown"), None);
    }
}
