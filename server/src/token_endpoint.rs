//! `GET|POST /auth/token`: the realm of the built-in token service (Docker token
//! authentication). Credentials come as HTTP Basic (GET, as `docker login` sends them) or as an
//! OAuth2 password grant (POST form). Anonymous callers get a token with what anonymous users
//! may do. Each requested scope is intersected with the caller's permissions; a partial or
//! empty grant is not an error.

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use crate::auth::token::{Grant, parse_scope};
use crate::auth::{Access, Action, Denial, Principal};
use crate::registry::RepoName;
use crate::state::AppState;

const ACTIONS: [(&str, Action); 3] = [
    ("pull", Action::Pull),
    ("push", Action::Push),
    ("delete", Action::Delete),
];

#[handler]
pub async fn token(req: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let access = &state.access;
    let Some(tokens) = access.tokens() else {
        return problem(StatusCode::NOT_FOUND, "token authentication is not enabled");
    };
    let client = req.remote_addr().as_socket_addr().map(|a| a.ip());
    let mut pairs: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let form_credentials = if req.method() == poem::http::Method::POST {
        let Ok(form) = body.into_bytes_limit(64 * 1024).await else {
            return problem(StatusCode::BAD_REQUEST, "unreadable form");
        };
        pairs.extend(form_urlencoded::parse(&form).into_owned());
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match (
            get("grant_type").as_deref(),
            get("username"),
            get("password"),
        ) {
            (Some("password"), Some(user), Some(password)) => Some(basic_header(&user, &password)),
            (Some("password"), _, _) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "username and password are required",
                );
            }
            (Some(other), _, _) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    &format!("unsupported grant_type {other}"),
                );
            }
            _ => None,
        }
    } else {
        None
    };
    // After the form: a POST carries its scopes there. Before any password is checked.
    let requested = match requested_scopes(&pairs) {
        Ok(scopes) => scopes,
        Err(message) => return problem(StatusCode::BAD_REQUEST, &message),
    };
    let authorization = form_credentials.or_else(|| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let who = match authorization {
        None => None,
        Some(h) => {
            match access.basic(&h, client).await {
                Ok(identity) => identity,
                Err(Denial::TooManyRequests(wait)) => {
                    return Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header(header::RETRY_AFTER, wait.as_secs().max(1))
                    .content_type("application/json")
                    .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many failed login attempts"}]}"#);
                }
                Err(Denial::Unavailable) => {
                    return problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "authentication unavailable",
                    );
                }
                Err(_) => {
                    return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(header::WWW_AUTHENTICATE, crate::auth::CHALLENGE)
                    .content_type("application/json")
                    .body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}"#);
                }
            }
        }
    };
    if let (Some(user), Some(slot)) = (&who, req.extensions().get::<crate::logging::RequestUser>())
    {
        slot.set(&user.identity.username);
    }
    let grants = requested
        .into_iter()
        .filter_map(|scope| grant(access, who.as_ref(), scope))
        .collect();
    match tokens.issue(who.as_ref().map(|p| &p.identity), grants) {
        Ok(token) => Response::builder()
            .status(StatusCode::OK)
            .content_type("application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(serde_json::to_vec(&token).expect("token response serializes")),
        Err(e) => {
            tracing::error!(error = %e, "could not sign a token");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "could not issue a token")
        }
    }
}

/// Most distinct resources in one token request: a pull or push asks for one to three (source
/// repositories of cross-repository mounts); the token, and the header carrying it on every
/// request, grow with each.
const MAX_SCOPES: usize = 32;

/// The scopes of a request's `scope` parameters (each may hold several, space-separated), with
/// repeated resources merged into one and their actions deduplicated.
fn requested_scopes(pairs: &[(String, String)]) -> Result<Vec<Grant>, String> {
    let mut merged: Vec<Grant> = Vec::new();
    let scopes = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').filter_map(parse_scope));
    for scope in scopes {
        let known = merged
            .iter()
            .position(|g| g.kind == scope.kind && g.name == scope.name);
        match known {
            Some(i) => merged[i].actions.extend(scope.actions),
            None if merged.len() == MAX_SCOPES => {
                return Err(format!("too many scopes (at most {MAX_SCOPES})"));
            }
            None => merged.push(scope),
        }
    }
    for grant in &mut merged {
        grant.actions.sort();
        grant.actions.dedup();
    }
    Ok(merged)
}

/// What of a requested scope the caller gets (`None`: nothing).
fn grant(access: &Access, who: Option<&Principal>, scope: Grant) -> Option<Grant> {
    let actions: Vec<String> = match scope.kind.as_str() {
        "repository" => {
            let name = RepoName::parse(&scope.name)?;
            let wants = |action: &str| scope.actions.iter().any(|a| a == action || a == "*");
            ACTIONS
                .iter()
                .filter(|(label, action)| {
                    wants(label) && access.permits(who, name.as_str(), *action)
                })
                .map(|(label, _)| (*label).to_owned())
                .collect()
        }
        "registry" if scope.name == "catalog" && who.is_some() => vec!["*".to_owned()],
        _ => Vec::new(),
    };
    (!actions.is_empty()).then_some(Grant { actions, ..scope })
}

fn basic_header(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn problem(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(
            serde_json::json!({ "errors": [{ "code": "UNSUPPORTED", "message": message }] })
                .to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(values: &[&str]) -> Result<Vec<Grant>, String> {
        let pairs: Vec<_> = values
            .iter()
            .map(|v| ("scope".to_owned(), (*v).to_owned()))
            .collect();
        requested_scopes(&pairs)
    }

    #[test]
    fn repeated_resources_merge_into_one_grant() {
        let got = scopes(&[
            "repository:a/b:pull",
            "repository:a/b:push,pull repository:c:pull",
            "repository:a/b:pull",
        ])
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].actions, ["pull", "push"]);
        assert_eq!(got[1].name, "c");
    }

    #[test]
    fn too_many_distinct_resources_are_refused() {
        let many: Vec<String> = (0..=MAX_SCOPES)
            .map(|i| format!("repository:r{i}:pull"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(scopes(&many[..MAX_SCOPES]).is_ok());
        assert!(scopes(&many).unwrap_err().contains("too many scopes"));
        let repeated = vec!["repository:same:pull"; 1000];
        assert_eq!(scopes(&repeated).unwrap().len(), 1);
    }
}
