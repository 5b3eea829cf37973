//! Registry errors, carrying the OCI error code and HTTP status the spec prescribes. The
//! registry service returns them; the `/v2` layer renders them as OCI error JSON.
//! Storage failures become `UNKNOWN`/500 with a generic message: details go to the log only.

use oci_storage_core::StorageError;

/// The OCI Distribution error codes (plus `UNKNOWN` for internal failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    PaginationNumberInvalid,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The status the spec pairs with the code when nothing more specific applies.
    fn default_status(self) -> u16 {
        match self {
            Self::BlobUnknown
            | Self::BlobUploadUnknown
            | Self::ManifestUnknown
            | Self::NameUnknown => 404,
            Self::Unauthorized => 401,
            Self::Denied => 403,
            Self::Unsupported => 405,
            Self::TooManyRequests => 429,
            Self::Unknown => 500,
            _ => 400,
        }
    }
}

/// An error answer of the registry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?} ({status}): {message}")]
pub struct RegistryError {
    pub code: ErrorCode,
    pub status: u16,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// For a 405 answer: the methods the resource does support (the `Allow` header).
    pub allow: Option<&'static str>,
    /// Seconds to send in `Retry-After` (with `TOOMANYREQUESTS`).
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge of a 401, when not the default Basic one.
    pub challenge: Option<String>,
}

impl RegistryError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status: code.default_status(),
            message: message.into(),
            detail: None,
            allow: None,
            retry_after: None,
            challenge: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn with_challenge(mut self, challenge: Option<String>) -> Self {
        self.challenge = challenge;
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            ErrorCode::Unknown,
            format!("internal error while {context}"),
        )
    }
}

/// Maps an unexpected storage failure; callers handle `NotFound` themselves where it means
/// something specific.
pub fn storage(context: &str) -> impl FnOnce(StorageError) -> RegistryError + '_ {
    move |e| RegistryError::internal(context, e)
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
