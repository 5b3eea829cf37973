//! Small JSON records kept in storage (manifest links, referrer entries, API tokens, chart
//! metadata): each kind has ONE size bound, checked when a record is written, so that whatever
//! was accepted can always be read back with the same bound. Readers of many records skip one
//! that cannot be read (with a log line) instead of failing for every caller.

use bytes::Bytes;
use oci_storage_core::{Key, Storage, StorageError, StorageExt, Within};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A kind of record and its size bound.
#[derive(Debug, Clone, Copy)]
pub struct RecordKind {
    /// What it is, for messages: "manifest link".
    pub what: &'static str,
    pub max_bytes: usize,
}

/// Where a tag or manifest revision points (digest, media type, size).
pub const MANIFEST_LINK: RecordKind = RecordKind {
    what: "manifest link",
    max_bytes: 4 * 1024,
};
/// A manifest's entry in its subject's referrers list (with the manifest's annotations).
pub const REFERRER_ENTRY: RecordKind = RecordKind {
    what: "referrer entry",
    max_bytes: 128 * 1024,
};
/// An API token's record.
pub const API_TOKEN: RecordKind = RecordKind {
    what: "API token",
    max_bytes: 64 * 1024,
};
/// A chart version's metadata (Chart.yaml, values.yaml, README and schema for display,
/// template names, digests, times); checked when the chart is pushed.
pub const CHART_METADATA: RecordKind = RecordKind {
    what: "chart metadata",
    max_bytes: 8 * 1024 * 1024,
};

/// A record over its kind's bound: refused when written.
#[derive(Debug, thiserror::Error)]
#[error("the {what} would be {size} bytes, over its limit of {max} bytes")]
pub struct TooLarge {
    pub what: &'static str,
    pub size: usize,
    pub max: usize,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The bytes are not a record of this kind within its bound (written by an older version,
    /// or damaged).
    #[error("the {what} at {key} cannot be read: {message}")]
    Unreadable {
        what: &'static str,
        key: String,
        message: String,
    },
}

impl RecordKind {
    /// The record's bytes, if it is within the bound.
    pub fn encode<T: Serialize>(&self, value: &T) -> Result<Bytes, TooLarge> {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        if bytes.len() > self.max_bytes {
            return Err(TooLarge {
                what: self.what,
                size: bytes.len(),
                max: self.max_bytes,
            });
        }
        Ok(Bytes::from(bytes))
    }

    /// Reads a record; `None` when there is none.
    pub async fn read<T: DeserializeOwned>(
        &self,
        storage: &dyn Storage,
        key: &Key,
    ) -> Result<Option<T>, ReadError> {
        let unreadable = |message: String| ReadError::Unreadable {
            what: self.what,
            key: key.to_string(),
            message,
        };
        let bytes = match storage.get_within(key, self.max_bytes as u64).await {
            Ok(Within::Read { bytes, .. }) => bytes,
            Ok(Within::TooLarge) => {
                return Err(unreadable(format!("over the limit of {}", self.max_bytes)));
            }
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| unreadable(e.to_string()))
    }

    /// Reads one of many records (for a listing): a record that went away meanwhile or cannot
    /// be read is `None`, the latter with a log line. Only a failing store is an error.
    pub async fn read_listed<T: DeserializeOwned>(
        &self,
        storage: &dyn Storage,
        key: &Key,
    ) -> Result<Option<T>, StorageError> {
        match self.read(storage, key).await {
            Ok(found) => Ok(found),
            Err(ReadError::Storage(e)) => Err(e),
            Err(e @ ReadError::Unreadable { .. }) => {
                tracing::warn!(error = %e, "skipping a record that cannot be read");
                Ok(None)
            }
        }
    }
}
