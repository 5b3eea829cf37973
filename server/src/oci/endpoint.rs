//! Parses a `/v2/…` request (method and path) once into the spec operation it names.
//! Repository names contain any number of `/`, so the path is read from the right.

use oci_storage_core::Digest;
use poem::http::Method;

use crate::auth::Action;
use crate::registry::{ErrorCode, Reference, RegistryError, RepoName};

/// One operation of the OCI Distribution API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciEndpoint {
    /// `GET /v2/`
    ApiVersion,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET /v2/<name>/tags/list`
    ListTags { name: RepoName },
    /// `GET|HEAD /v2/<name>/manifests/<reference>`
    GetManifest {
        name: RepoName,
        reference: Reference,
        head: bool,
    },
    /// `PUT /v2/<name>/manifests/<reference>`
    PutManifest {
        name: RepoName,
        reference: Reference,
    },
    /// `DELETE /v2/<name>/manifests/<reference>`
    DeleteManifest {
        name: RepoName,
        reference: Reference,
    },
    /// `GET|HEAD /v2/<name>/blobs/<digest>`
    GetBlob {
        name: RepoName,
        digest: Digest,
        head: bool,
    },
    /// `DELETE /v2/<name>/blobs/<digest>`
    DeleteBlob { name: RepoName, digest: Digest },
    /// `POST /v2/<name>/blobs/uploads/`
    StartUpload { name: RepoName },
    /// `GET /v2/<name>/blobs/uploads/<id>`
    UploadStatus { name: RepoName, id: String },
    /// `PATCH /v2/<name>/blobs/uploads/<id>`
    PatchUpload { name: RepoName, id: String },
    /// `PUT /v2/<name>/blobs/uploads/<id>?digest=`
    FinishUpload { name: RepoName, id: String },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`
    CancelUpload { name: RepoName, id: String },
    /// `GET /v2/<name>/referrers/<digest>`
    ListReferrers { name: RepoName, digest: Digest },
}

impl OciEndpoint {
    /// The action the caller must be allowed.
    pub fn action(&self) -> Action {
        match self {
            Self::ApiVersion
            | Self::Catalog
            | Self::ListTags { .. }
            | Self::GetManifest { .. }
            | Self::GetBlob { .. }
            | Self::ListReferrers { .. } => Action::Pull,
            Self::PutManifest { .. }
            | Self::StartUpload { .. }
            | Self::UploadStatus { .. }
            | Self::PatchUpload { .. }
            | Self::FinishUpload { .. }
            | Self::CancelUpload { .. } => Action::Push,
            Self::DeleteManifest { .. } | Self::DeleteBlob { .. } => Action::Delete,
        }
    }

    /// The repository the operation is about, if any.
    pub fn repository(&self) -> Option<&RepoName> {
        match self {
            Self::ApiVersion | Self::Catalog => None,
            Self::ListTags { name }
            | Self::GetManifest { name, .. }
            | Self::PutManifest { name, .. }
            | Self::DeleteManifest { name, .. }
            | Self::GetBlob { name, .. }
            | Self::DeleteBlob { name, .. }
            | Self::StartUpload { name }
            | Self::UploadStatus { name, .. }
            | Self::PatchUpload { name, .. }
            | Self::FinishUpload { name, .. }
            | Self::CancelUpload { name, .. }
            | Self::ListReferrers { name, .. } => Some(name),
        }
    }

    /// Parses the part of the path after `/v2/`.
    pub fn parse(method: &Method, path: &str) -> Result<Self, RegistryError> {
        let segments: Vec<&str> = path.split('/').collect();
        let is = |m: &Method| method == m;
        let head_or_get = is(&Method::GET) || is(&Method::HEAD);
        let n = segments.len();
        let name_of = |upto: usize| parse_name(&segments[..upto]);
        match segments.as_slice() {
            [""] => allow(head_or_get, READ, || Ok(Self::ApiVersion)),
            ["_catalog"] => allow(head_or_get, READ, || Ok(Self::Catalog)),
            [.., "tags", "list"] if n > 2 => allow(head_or_get, READ, || {
                Ok(Self::ListTags {
                    name: name_of(n - 2)?,
                })
            }),
            [.., "blobs", "uploads", ""] | [.., "blobs", "uploads"] => {
                let upto = if segments[n - 1].is_empty() {
                    n - 3
                } else {
                    n - 2
                };
                allow(is(&Method::POST), "POST", || {
                    Ok(Self::StartUpload {
                        name: name_of(upto)?,
                    })
                })
            }
            [.., "blobs", "uploads", id] if n > 3 => {
                let name = name_of(n - 3)?;
                let id = (*id).to_owned();
                match *method {
                    Method::GET | Method::HEAD => Ok(Self::UploadStatus { name, id }),
                    Method::PATCH => Ok(Self::PatchUpload { name, id }),
                    Method::PUT => Ok(Self::FinishUpload { name, id }),
                    Method::DELETE => Ok(Self::CancelUpload { name, id }),
                    _ => Err(not_allowed("GET, HEAD, PATCH, PUT, DELETE")),
                }
            }
            [.., "blobs", digest] if n > 2 => {
                let name = name_of(n - 2)?;
                let digest = parse_digest(digest)?;
                match *method {
                    Method::GET => Ok(Self::GetBlob {
                        name,
                        digest,
                        head: false,
                    }),
                    Method::HEAD => Ok(Self::GetBlob {
                        name,
                        digest,
                        head: true,
                    }),
                    Method::DELETE => Ok(Self::DeleteBlob { name, digest }),
                    _ => Err(not_allowed("GET, HEAD, DELETE")),
                }
            }
            [.., "manifests", reference] if n > 2 => {
                let name = name_of(n - 2)?;
                let reference = parse_reference(reference)?;
                match *method {
                    Method::GET => Ok(Self::GetManifest {
                        name,
                        reference,
                        head: false,
                    }),
                    Method::HEAD => Ok(Self::GetManifest {
                        name,
                        reference,
                        head: true,
                    }),
                    Method::PUT => Ok(Self::PutManifest { name, reference }),
                    Method::DELETE => Ok(Self::DeleteManifest { name, reference }),
                    _ => Err(not_allowed("GET, HEAD, PUT, DELETE")),
                }
            }
            [.., "referrers", digest] if n > 2 => allow(head_or_get, READ, || {
                Ok(Self::ListReferrers {
                    name: name_of(n - 2)?,
                    digest: parse_digest(digest)?,
                })
            }),
            _ => Err(
                RegistryError::new(ErrorCode::NameUnknown, "no such registry endpoint")
                    .with_status(404),
            ),
        }
    }
}

/// The methods of read-only endpoints.
const READ: &str = "GET, HEAD";

fn allow(
    ok: bool,
    methods: &'static str,
    build: impl FnOnce() -> Result<OciEndpoint, RegistryError>,
) -> Result<OciEndpoint, RegistryError> {
    if ok {
        build()
    } else {
        Err(not_allowed(methods))
    }
}

/// 405, naming the methods the endpoint supports (RFC 9110 requires `Allow`).
fn not_allowed(methods: &'static str) -> RegistryError {
    RegistryError::new(
        ErrorCode::Unsupported,
        "method not allowed on this endpoint",
    )
    .with_status(405)
    .with_allow(methods)
}

fn parse_name(segments: &[&str]) -> Result<RepoName, RegistryError> {
    let name = segments.join("/");
    RepoName::parse(&name).ok_or_else(|| {
        RegistryError::new(ErrorCode::NameInvalid, "invalid repository name")
            .with_detail(serde_json::json!({ "name": name }))
    })
}

fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    s.parse().map_err(|e: oci_storage_core::DigestError| {
        RegistryError::new(ErrorCode::DigestInvalid, format!("invalid digest: {e}"))
            .with_detail(serde_json::json!({ "digest": s }))
    })
}

fn parse_reference(s: &str) -> Result<Reference, RegistryError> {
    if s.contains(':') {
        return parse_digest(s).map(Reference::Digest);
    }
    s.parse().map_err(|()| {
        RegistryError::new(ErrorCode::ManifestInvalid, "invalid tag")
            .with_detail(serde_json::json!({ "tag": s }))
    })
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn ok(method: Method, path: &str) -> OciEndpoint {
        OciEndpoint::parse(&method, path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn routes() {
        assert_eq!(ok(Method::GET, ""), OciEndpoint::ApiVersion);
        assert_eq!(ok(Method::GET, "_catalog"), OciEndpoint::Catalog);
        let name = RepoName::parse("a/b/c").unwrap();
        assert_eq!(
            ok(Method::GET, "a/b/c/tags/list"),
            OciEndpoint::ListTags { name: name.clone() }
        );
        assert_eq!(
            ok(Method::POST, "a/b/c/blobs/uploads/"),
            OciEndpoint::StartUpload { name: name.clone() }
        );
        assert!(matches!(
            ok(Method::PATCH, "a/b/c/blobs/uploads/abc"),
            OciEndpoint::PatchUpload { .. }
        ));
        assert!(matches!(
            ok(Method::HEAD, &format!("a/b/c/blobs/{D}")),
            OciEndpoint::GetBlob { head: true, .. }
        ));
        assert!(matches!(
            ok(Method::PUT, "a/manifests/manifests/v1"),
            OciEndpoint::PutManifest { .. }
        ));
        assert!(matches!(
            ok(Method::GET, &format!("x/referrers/{D}")),
            OciEndpoint::ListReferrers { .. }
        ));
    }

    #[test]
    fn rejects() {
        let code = |m: Method, p: &str| OciEndpoint::parse(&m, p).unwrap_err().code;
        assert_eq!(
            code(Method::GET, "../etc/manifests/x"),
            ErrorCode::NameInvalid
        );
        assert_eq!(code(Method::GET, "A/manifests/x"), ErrorCode::NameInvalid);
        assert_eq!(
            code(Method::GET, "a/blobs/sha256:zz"),
            ErrorCode::DigestInvalid
        );
        assert_eq!(
            code(Method::GET, "a/manifests/bad+tag"),
            ErrorCode::ManifestInvalid
        );
        assert_eq!(code(Method::POST, "a/manifests/x"), ErrorCode::Unsupported);
        assert_eq!(code(Method::GET, "a/unknown/x"), ErrorCode::NameUnknown);
    }
}
