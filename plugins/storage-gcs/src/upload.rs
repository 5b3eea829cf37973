//! Streaming writes. A body that fits in one chunk is a single upload request; a longer one
//! is a resumable upload sent chunk by chunk (at most two chunks in memory), finalized only
//! once the whole input has been read. An input error therefore never finalizes anything:
//! the session is cancelled and no object becomes visible.

use bytes::Bytes;
use gcloud_storage::http::Error as GcsError;
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::objects::upload::{Media, UploadObjectRequest, UploadType};
use gcloud_storage::http::resumable_upload_client::{
    ChunkSize, ResumableUploadClient, UploadStatus,
};
use oci_storage_core::chunks::{self, Chunker};
use oci_storage_core::{ByteStream, PutMode, StorageError};

use crate::GcsStorage;
use crate::errors;

const CONTENT_TYPE: &str = "application/octet-stream";

/// The precondition of a write, as GCS sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    Unconditional,
    /// `ifGenerationMatch=0`: the object must not exist.
    Absent,
    /// `ifGenerationMatch=N`: the live object must be generation N.
    Generation(i64),
    /// A version token that is no generation, so it can never match.
    Impossible,
}

impl Condition {
    pub(crate) fn from_mode(mode: &PutMode) -> Self {
        match mode {
            PutMode::Overwrite => Self::Unconditional,
            PutMode::Create => Self::Absent,
            PutMode::Update(token) => match token.parse::<i64>() {
                Ok(generation) if generation > 0 => Self::Generation(generation),
                _ => Self::Impossible,
            },
        }
    }

    fn if_generation_match(self) -> Option<i64> {
        match self {
            Self::Unconditional | Self::Impossible => None,
            Self::Absent => Some(0),
            Self::Generation(generation) => Some(generation),
        }
    }
}

#[derive(Debug)]
pub(crate) enum UploadError {
    /// The input stream failed.
    Input(std::io::Error),
    Gcs(GcsError),
    /// The precondition is known to fail without asking GCS.
    Unmet,
    /// GCS answered something a correct upload never gets.
    Protocol(String),
}

impl UploadError {
    pub(crate) fn into_storage_error(self, key: &str, mode: &PutMode) -> StorageError {
        match self {
            Self::Input(e) => StorageError::Input(e),
            Self::Gcs(e) => errors::write_error(key, mode, e),
            Self::Unmet => match mode {
                PutMode::Create => StorageError::AlreadyExists {
                    key: key.to_owned(),
                },
                PutMode::Update(_) | PutMode::Overwrite => StorageError::Precondition {
                    key: key.to_owned(),
                },
            },
            Self::Protocol(message) => StorageError::Backend {
                message: format!("gcs: resumable upload of {key}: {message}"),
                source: None,
            },
        }
    }
}

/// Writes the object `name` from `body` under `condition`.
pub(crate) async fn put(
    store: &GcsStorage,
    name: &str,
    body: ByteStream,
    condition: Condition,
) -> Result<Object, UploadError> {
    if condition == Condition::Impossible {
        return Err(UploadError::Unmet);
    }
    let size = store.chunk_size;
    let mut chunker = Chunker::new(body, size);
    let first = chunker
        .next_chunk()
        .await
        .map_err(UploadError::Input)?
        .unwrap_or_default();
    if first.len() < size {
        return simple(store, name, first, condition).await;
    }
    let Some(second) = chunker.next_chunk().await.map_err(UploadError::Input)? else {
        return simple(store, name, first, condition).await;
    };
    precheck(store, name, condition).await?;
    let session = store
        .client
        .prepare_resumable_upload(
            &UploadObjectRequest {
                bucket: store.bucket.clone(),
                // GCS evaluates it when the upload is finalized.
                if_generation_match: condition.if_generation_match(),
                ..Default::default()
            },
            &UploadType::Simple(Media::new(name.to_owned())),
        )
        .await
        .map_err(UploadError::Gcs)?;
    let result = send_chunks(&session, size, first, second, chunker).await;
    if result.is_err() {
        // Best effort: an unfinalized session is never visible, and expires on its own.
        if let Err(e) = session.cancel().await {
            tracing::debug!(error = %errors::redact(e), object = name, "cancelling a resumable upload failed");
        }
    }
    result
}

/// One request holding metadata, preconditions and the whole body.
async fn simple(
    store: &GcsStorage,
    name: &str,
    data: Bytes,
    condition: Condition,
) -> Result<Object, UploadError> {
    store
        .client
        .upload_object(
            &UploadObjectRequest {
                bucket: store.bucket.clone(),
                if_generation_match: condition.if_generation_match(),
                ..Default::default()
            },
            data,
            // Multipart (metadata + media) rather than a media upload: emulators honour
            // preconditions on it too.
            &UploadType::Multipart(Box::new(Object {
                name: name.to_owned(),
                content_type: Some(CONTENT_TYPE.to_owned()),
                ..Default::default()
            })),
        )
        .await
        .map_err(UploadError::Gcs)
}

/// Before sending a large body, fails fast if the precondition already does not hold (GCS
/// would only say so after the last byte). Atomicity still comes from the session's
/// precondition.
async fn precheck(store: &GcsStorage, name: &str, condition: Condition) -> Result<(), UploadError> {
    let Some(expected) = condition.if_generation_match() else {
        return Ok(());
    };
    match store.stat(name).await {
        Ok(object) if expected != 0 && object.generation == expected => Ok(()),
        Ok(_) => Err(UploadError::Unmet),
        Err(e) if errors::status(&e) == Some(404) => {
            if expected == 0 {
                Ok(())
            } else {
                Err(UploadError::Unmet)
            }
        }
        Err(e) => Err(UploadError::Gcs(e)),
    }
}

/// Sends every chunk, then finalizes. Each full chunk is sent while the next one is read.
async fn send_chunks(
    session: &ResumableUploadClient,
    chunk_size: usize,
    first: Bytes,
    second: Bytes,
    mut chunker: Chunker,
) -> Result<Object, UploadError> {
    let mut offset = 0u64;
    let mut current = first;
    let mut lookahead = Some(second);
    loop {
        let len = current.len() as u64;
        let end = offset + len;
        if current.len() < chunk_size {
            // Only the last chunk can be short: sending it with the total finalizes.
            let range = ChunkSize::new(offset, end - 1, Some(end));
            return finalized(session.upload_multiple_chunk(current, &range).await);
        }
        let range = ChunkSize::new(offset, end - 1, None);
        // Kept to hand the buffer back to the chunker's pool once sent.
        let sent_chunk = current.clone();
        let next = match lookahead.take() {
            Some(next) => {
                incomplete(session.upload_multiple_chunk(current, &range).await, end)?;
                Some(next)
            }
            None => {
                let (sent, next) = tokio::join!(
                    session.upload_multiple_chunk(current, &range),
                    chunker.next_chunk()
                );
                let next = next.map_err(UploadError::Input)?;
                incomplete(sent, end)?;
                next
            }
        };
        chunks::recycle(sent_chunk);
        offset = end;
        match next {
            Some(chunk) => current = chunk,
            None => {
                // The input ended on a chunk boundary: an empty request states the total.
                let range = ChunkSize::new(offset, offset, Some(offset));
                return finalized(session.upload_multiple_chunk(Bytes::new(), &range).await);
            }
        }
    }
}

/// A non-final chunk must leave the session open with everything up to `end` persisted.
fn incomplete(sent: Result<UploadStatus, GcsError>, end: u64) -> Result<(), UploadError> {
    match sent.map_err(|e| UploadError::Gcs(errors::redact(e)))? {
        UploadStatus::ResumeIncomplete(range) if range.last_byte + 1 == end => Ok(()),
        UploadStatus::ResumeIncomplete(range) => Err(UploadError::Protocol(format!(
            "server persisted bytes up to {} of {end}",
            range.last_byte + 1
        ))),
        UploadStatus::NotStarted => Err(UploadError::Protocol(
            "server persisted nothing of a chunk".to_owned(),
        )),
        UploadStatus::Ok(_) => Err(UploadError::Protocol(
            "server finalized the object before its last chunk".to_owned(),
        )),
    }
}

fn finalized(sent: Result<UploadStatus, GcsError>) -> Result<Object, UploadError> {
    match sent.map_err(|e| UploadError::Gcs(errors::redact(e)))? {
        UploadStatus::Ok(object) => Ok(object),
        UploadStatus::ResumeIncomplete(_) | UploadStatus::NotStarted => Err(UploadError::Protocol(
            "server did not finalize after the last chunk".to_owned(),
        )),
    }
}
