//! The `BackupTarget` trait: a bucket (S3, GCS, a directory…) that backups are written to and
//! restored from. Snapshots share content-addressed objects, so a target is a small key-value
//! store: streamed writes (create-only for what must never be replaced), reads, paged listing.
//! [`StorageTarget`] makes any [`Storage`] a target, which is how the built-in fs, s3 and gcs
//! targets reuse their storage plugins' clients; `testkit::run_backup_target_conformance`
//! checks an implementation against the contract below.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::{ByteStream, Key, ListOptions, PutMode, Storage, StorageError};

/// How a write treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace whatever is there.
    Overwrite,
    /// Fail with [`BackupError::AlreadyExists`] if the path exists (atomically, across
    /// processes): a snapshot record is written once, and its existence means "complete".
    Create,
}

/// One object held by a backup target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupObject {
    /// Path relative to the target's configured prefix, in the [`Key`] grammar.
    pub path: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
}

/// One page of [`BackupTarget::list`].
#[derive(Debug, Clone, Default)]
pub struct BackupPage {
    pub objects: Vec<BackupObject>,
    /// Set when more objects may follow: pass it as `start_after` to continue.
    pub next: Option<String>,
}

/// Why a backup target call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("backup object not found: {0}")]
    NotFound(String),
    #[error("backup object already exists: {0}")]
    AlreadyExists(String),
    /// The stream given to a write failed, or did not hold the announced size; nothing was
    /// written.
    #[error("input stream failed: {0}")]
    Input(#[source] std::io::Error),
    #[error("backup target error: {message}")]
    Target {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Where backups go.
///
/// # Contract (checked by `testkit::run_backup_target_conformance`)
/// - `put` is atomic and streaming (no whole object in memory): readers see the old object or
///   the new one. A failed input stream, or one whose length differs from `size`, leaves
///   nothing and answers [`BackupError::Input`]. [`WriteMode::Create`] fails with
///   [`BackupError::AlreadyExists`] when the path exists, atomically across processes.
/// - `get` and `head` of a missing path answer [`BackupError::NotFound`]; `delete` of a
///   missing path succeeds.
/// - `list` visits every object under `prefix` exactly once, in one consistent order, page by
///   page (`next` → `start_after`).
/// - `check` answers `Ok` when the target is reachable and readable.
/// - Credentials come from configuration or the platform's default chain, never from a request.
#[async_trait]
pub trait BackupTarget: Send + Sync + fmt::Debug {
    /// Where it writes, for logs and the web interface (`s3:bucket/prefix/`); no secrets.
    fn describe(&self) -> String;
    async fn check(&self) -> Result<(), BackupError>;
    async fn put(
        &self,
        path: &Key,
        body: ByteStream,
        size: u64,
        mode: WriteMode,
    ) -> Result<(), BackupError>;
    async fn get(&self, path: &Key) -> Result<(BackupObject, ByteStream), BackupError>;
    async fn head(&self, path: &Key) -> Result<BackupObject, BackupError>;
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<BackupPage, BackupError>;
    async fn delete(&self, path: &Key) -> Result<(), BackupError>;
}

/// Any [`Storage`] as a backup target. The storage's own guarantees (atomic streamed writes,
/// create-only writes, consistent paged listing) are the target's; `size` is checked while the
/// body streams.
#[derive(Clone)]
pub struct StorageTarget {
    storage: Arc<dyn Storage>,
    description: String,
}

impl StorageTarget {
    /// `description` is what [`BackupTarget::describe`] answers (`fs:/backups/`).
    pub fn new(storage: Arc<dyn Storage>, description: impl Into<String>) -> Self {
        Self {
            storage,
            description: description.into(),
        }
    }
}

impl fmt::Debug for StorageTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageTarget")
            .field("target", &self.description)
            .finish_non_exhaustive()
    }
}

fn from_storage(e: StorageError) -> BackupError {
    match e {
        StorageError::NotFound { key } => BackupError::NotFound(key),
        StorageError::AlreadyExists { key } => BackupError::AlreadyExists(key),
        StorageError::Input(e) => BackupError::Input(e),
        other => BackupError::Target {
            message: other.to_string(),
            source: Some(Box::new(other)),
        },
    }
}

fn object(meta: crate::ObjectMeta) -> BackupObject {
    BackupObject {
        path: meta.key.as_str().to_owned(),
        size: meta.size,
        last_modified: meta.last_modified,
    }
}

#[async_trait]
impl BackupTarget for StorageTarget {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn check(&self) -> Result<(), BackupError> {
        self.storage.check().await.map_err(from_storage)
    }

    async fn put(
        &self,
        path: &Key,
        body: ByteStream,
        size: u64,
        mode: WriteMode,
    ) -> Result<(), BackupError> {
        let mode = match mode {
            WriteMode::Overwrite => PutMode::Overwrite,
            WriteMode::Create => PutMode::Create,
        };
        let body = Box::pin(ExactSize {
            body,
            left: size,
            done: false,
        });
        self.storage
            .put(path, body, mode)
            .await
            .map(drop)
            .map_err(from_storage)
    }

    async fn get(&self, path: &Key) -> Result<(BackupObject, ByteStream), BackupError> {
        let got = self.storage.get(path, None).await.map_err(from_storage)?;
        Ok((object(got.meta), got.body))
    }

    async fn head(&self, path: &Key) -> Result<BackupObject, BackupError> {
        self.storage
            .head(path)
            .await
            .map(object)
            .map_err(from_storage)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<BackupPage, BackupError> {
        let options = ListOptions {
            start_after: start_after.map(str::to_owned),
            ..ListOptions::default()
        };
        let page = self
            .storage
            .list(prefix, options)
            .await
            .map_err(from_storage)?;
        Ok(BackupPage {
            objects: page.objects.into_iter().map(object).collect(),
            next: page.next,
        })
    }

    async fn delete(&self, path: &Key) -> Result<(), BackupError> {
        self.storage.delete(path).await.map_err(from_storage)
    }
}

/// A body that fails at its end (so the write commits nothing) unless it held exactly the
/// announced number of bytes.
struct ExactSize {
    body: ByteStream,
    left: u64,
    done: bool,
}

impl Stream for ExactSize {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mismatch = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("body {what} than announced"),
            )
        };
        match self.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let Some(left) = self.left.checked_sub(chunk.len() as u64) else {
                    self.done = true;
                    return Poll::Ready(Some(Err(mismatch("longer"))));
                };
                self.left = left;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) if self.left > 0 => {
                self.done = true;
                Poll::Ready(Some(Err(mismatch("shorter"))))
            }
            other => other,
        }
    }
}
