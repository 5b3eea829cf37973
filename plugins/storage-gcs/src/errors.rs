//! Mapping `gcloud-storage` errors to [`StorageError`].

use gcloud_storage::http::Error as GcsError;
use oci_storage_core::{PutMode, StorageError};

/// The HTTP status of a failed call, whether or not the body was a GCS error document (an
/// emulator may answer plain text).
pub(crate) fn status(e: &GcsError) -> Option<u16> {
    match e {
        GcsError::Response(response) => Some(response.code),
        GcsError::HttpClient(e) | GcsError::RawResponse(e, _) => e.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// Drops the URL from transport errors: a resumable session URL is a bearer capability.
pub(crate) fn redact(e: GcsError) -> GcsError {
    match e {
        GcsError::HttpClient(e) => GcsError::HttpClient(e.without_url()),
        GcsError::RawResponse(e, detail) => GcsError::RawResponse(e.without_url(), detail),
        other => other,
    }
}

pub(crate) fn backend(what: impl Into<String>, e: GcsError) -> StorageError {
    StorageError::backend(format!("gcs: {}", what.into()), e)
}

/// For reads, heads and copies: 404 is the caller's [`StorageError::NotFound`].
pub(crate) fn read_error(key: &str, what: &str, e: GcsError) -> StorageError {
    if status(&e) == Some(404) {
        StorageError::NotFound {
            key: key.to_owned(),
        }
    } else {
        backend(format!("{what} of {key}"), e)
    }
}

/// For writes: a failed `ifGenerationMatch` is 412 (404 when the object vanished meanwhile).
pub(crate) fn write_error(key: &str, mode: &PutMode, e: GcsError) -> StorageError {
    match (mode, status(&e)) {
        (PutMode::Create, Some(412)) => StorageError::AlreadyExists {
            key: key.to_owned(),
        },
        (PutMode::Update(_), Some(412 | 404)) => StorageError::Precondition {
            key: key.to_owned(),
        },
        _ => backend(format!("writing {key}"), e),
    }
}
