//! Maps S3 SDK failures onto [`StorageError`] by HTTP status, which every S3-compatible store
//! agrees on more reliably than on error codes.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use oci_storage_core::StorageError;

/// The HTTP status of a failed call, when a response arrived.
pub(crate) fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// 404 → NotFound (but a missing bucket or multipart upload is a backend fault, not a missing
/// key), 412 (and 409 ConditionalRequestConflict: a concurrent conditional write won) →
/// Precondition, anything else → Backend with the SDK's full context.
pub(crate) fn map<E>(err: SdkError<E, HttpResponse>, what: &str, name: &str) -> StorageError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match status(&err) {
        Some(404) if !matches!(err.code(), Some("NoSuchBucket" | "NoSuchUpload")) => {
            StorageError::NotFound {
                key: name.to_owned(),
            }
        }
        Some(412) => StorageError::Precondition {
            key: name.to_owned(),
        },
        Some(409) if err.code() == Some("ConditionalRequestConflict") => {
            StorageError::Precondition {
                key: name.to_owned(),
            }
        }
        _ => StorageError::Backend {
            message: format!("s3 {what} {name}: {}", DisplayErrorContext(&err)),
            source: Some(Box::new(err)),
        },
    }
}

/// For writes: a failed precondition means "exists" in create mode.
pub(crate) fn for_mode(err: StorageError, create: bool) -> StorageError {
    match err {
        StorageError::Precondition { key } if create => StorageError::AlreadyExists { key },
        StorageError::NotFound { key } => StorageError::Precondition { key },
        other => other,
    }
}
