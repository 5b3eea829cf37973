//! The `Storage` trait: a flat, object-store-shaped key space that is the registry's only source
//! of truth. Implemented by storage plugins; called by the registry service.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, stream};

/// A stream of bytes flowing into or out of storage. Errors are `io::Error` so that the stream
/// can come straight from (or go straight to) an HTTP body.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Wraps a single buffer as a [`ByteStream`].
pub fn bytes_stream(bytes: Bytes) -> ByteStream {
    Box::pin(stream::once(async move { Ok(bytes) }))
}

/// A validated storage key: `/`-separated segments of `[A-Za-z0-9._!,+=@-]`, no empty
/// segment, no segment that starts with `.` (so never `.` or `..`), at most 1024 bytes.
///
/// Backends may rely on this grammar: a key can be mapped to a relative path or an object name
/// without escaping.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Validates and wraps a key.
    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        match Self::problem(&key) {
            None => Ok(Self(key)),
            Some(reason) => Err(StorageError::InvalidKey { key, reason }),
        }
    }

    fn problem(key: &str) -> Option<&'static str> {
        if key.is_empty() || key.len() > 1024 {
            return Some("length must be 1..=1024 bytes");
        }
        for segment in key.split('/') {
            if segment.is_empty() {
                return Some("empty segment");
            }
            if segment.starts_with('.') {
                return Some("segment starts with '.'");
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._!,+=@-".contains(&b))
            {
                return Some("character outside [A-Za-z0-9._!,+=@-]");
            }
        }
        None
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

/// What storage knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: Key,
    pub size: u64,
    /// An opaque version token (ETag, generation, inode+mtime…) usable with [`PutMode::Update`].
    pub version: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// How a write treats an existing object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Fail with [`StorageError::AlreadyExists`] if the key exists.
    Create,
    /// Replace only if the current version equals this token, else [`StorageError::Precondition`].
    Update(String),
}

/// The answer to [`Storage::get`]; build it with [`GetResult::new`].
#[non_exhaustive]
pub struct GetResult {
    /// The whole object's metadata (its `size` is the full size even for a range read).
    pub meta: ObjectMeta,
    /// The bytes actually served.
    pub range: Range<u64>,
    pub body: ByteStream,
    /// The open local file holding the object, when the backend reads one: the server may
    /// then send `range` of it with `sendfile(2)` (no copy through user space) instead of
    /// polling `body`, which it keeps unpolled until the transfer ends. The bytes of the file
    /// must never change while it is open; the fs backend replaces files by rename, never in
    /// place.
    pub file: Option<Arc<std::fs::File>>,
}

impl GetResult {
    pub fn new(meta: ObjectMeta, range: Range<u64>, body: ByteStream) -> Self {
        Self {
            meta,
            range,
            body,
            file: None,
        }
    }

    /// Offers the open file that `body` reads from (see [`GetResult::file`]).
    pub fn with_file(mut self, file: Arc<std::fs::File>) -> Self {
        self.file = Some(file);
        self
    }

    /// The same answer with its body replaced by `wrap(body)` (the file, if any, is kept).
    pub fn map_body(mut self, wrap: impl FnOnce(ByteStream) -> ByteStream) -> Self {
        self.body = wrap(self.body);
        self
    }
}

impl fmt::Debug for GetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .field("file", &self.file.is_some())
            .finish_non_exhaustive()
    }
}

/// Options of [`Storage::list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only keys strictly greater than this one.
    pub start_after: Option<String>,
    /// At most this many entries (objects plus prefixes); `None` means the backend's page size.
    pub limit: Option<usize>,
    /// Roll keys that contain a `/` after the prefix up into common prefixes.
    pub delimiter: bool,
}

/// One page of [`Storage::list`].
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Common prefixes (with their trailing `/`) when listing with a delimiter.
    pub prefixes: Vec<String>,
    /// Set when more entries may follow: pass it as `start_after` to continue.
    pub next: Option<String>,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    /// The backend's token for the part (an S3 ETag, a file name…).
    pub tag: String,
}

/// The errors every backend maps its own failures into.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("object not found: {key}")]
    NotFound { key: String },
    #[error("object already exists: {key}")]
    AlreadyExists { key: String },
    #[error("precondition failed (object changed concurrently): {key}")]
    Precondition { key: String },
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The input stream given to a write failed; nothing was written.
    #[error("input stream failed: {0}")]
    Input(#[source] std::io::Error),
    #[error("storage backend error: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StorageError {
    /// A backend error with a message and an underlying cause.
    pub fn backend(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Where the registry keeps everything.
///
/// # Contract
/// Implementations must honour these rules; the conformance suite in
/// `oci_storage_core::testkit` (feature `testkit`) checks them.
/// - **Flat keys.** There are no directories and no rename. The registry never stores an
///   object at a key that is a proper `/`-prefix of another key, so a backend may map keys
///   to nested paths.
/// - **Atomic writes.** [`put`](Storage::put), [`copy`](Storage::copy) and
///   [`complete_multipart`](Storage::complete_multipart) make the new content visible all at
///   once or not at all. A reader sees the old or the new object, never a mix or a prefix. If
///   the input stream of `put` or `put_part` yields an error, nothing becomes visible and the
///   call returns [`StorageError::Input`]; this is how the registry rejects a blob whose digest
///   does not match *before* it is visible.
/// - **Streaming.** Memory use must not grow with object size.
/// - **Conditional writes.** [`PutMode::Create`] and [`PutMode::Update`] are atomic
///   compare-and-set operations across processes sharing the backend.
/// - **Ranges.** `get` with a range answers the bytes `start..min(end, size)`; a range that
///   starts at or past the end of the object yields an empty body (the caller validates ranges).
/// - **NotFound.** Reading, heading or copying a missing key is [`StorageError::NotFound`].
/// - **Idempotent delete.** Deleting a missing key succeeds.
/// - **Ordered listing.** `list` answers keys in one consistent order, strictly after
///   `start_after`, and reports `next` when it stopped early; paging with `next` visits every
///   key exactly once. The order is byte-wise lexical (fs, AWS S3, GCS) or segment-wise, i.e.
///   as if `/` sorted before every other byte (stores that list like a file system walk, such
///   as SeaweedFS). The two agree on keys that differ only in their last segment (tags,
///   referrers, repositories of one namespace level).
/// - **Read-your-writes.** A completed write is visible to every later call, from any process.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// A short human description for logs, e.g. `fs:/var/lib/oci-storage`.
    fn describe(&self) -> String;

    /// Reads an object, or the given byte range of it.
    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<GetResult, StorageError>;

    /// Reads an object's metadata.
    async fn head(&self, key: &Key) -> Result<ObjectMeta, StorageError>;

    /// Writes an object from a stream, atomically.
    async fn put(
        &self,
        key: &Key,
        body: ByteStream,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError>;

    /// Deletes an object; succeeds if it does not exist.
    async fn delete(&self, key: &Key) -> Result<(), StorageError>;

    /// Copies an object within the backend, atomically replacing the destination.
    async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StorageError>;

    /// Lists keys that start with `prefix` (a plain string prefix, not necessarily ending in `/`).
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StorageError>;

    /// Starts a multipart upload that will become `key`; answers an upload id.
    async fn create_multipart(&self, key: &Key) -> Result<String, StorageError>;

    /// Uploads one part (numbers start at 1; parts may be uploaded from different processes).
    async fn put_part(
        &self,
        key: &Key,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<PartInfo, StorageError>;

    /// Joins the given parts, in order, into `key`, atomically; the upload id is then spent.
    /// The upload is identified by its id: `key` may differ from the one it was created for
    /// (the registry joins a verified upload straight into its blob's key).
    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> Result<ObjectMeta, StorageError>;

    /// Discards a multipart upload and its parts; succeeds if it no longer exists.
    async fn abort_multipart(&self, key: &Key, upload_id: &str) -> Result<(), StorageError>;

    /// A short-lived URL from which a client may download the object directly (a presigned
    /// redirect), when the backend is configured to offer one; `None` serves the bytes through
    /// the registry. The URL must not carry a secret that outlives it.
    async fn download_url(&self, _key: &Key) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    /// Checks that the backend is reachable (used by `/readyz`).
    async fn check(&self) -> Result<(), StorageError> {
        self.list(
            "",
            ListOptions {
                limit: Some(1),
                delimiter: true,
                ..ListOptions::default()
            },
        )
        .await
        .map(|_| ())
    }
}

/// A small object read whole by [`StorageExt::get_within`].
#[derive(Debug)]
pub enum Within {
    Read {
        meta: ObjectMeta,
        bytes: Bytes,
    },
    /// The object is larger than the bound (nothing was kept of it).
    TooLarge,
}

/// Conveniences over [`Storage`]; implemented for every backend, never by hand.
#[async_trait]
pub trait StorageExt: Storage {
    /// Reads a whole small object into memory, refusing objects larger than `max`.
    async fn get_bytes(&self, key: &Key, max: u64) -> Result<Bytes, StorageError> {
        match self.get_within(key, max).await? {
            Within::Read { bytes, .. } => Ok(bytes),
            Within::TooLarge => Err(StorageError::Backend {
                message: format!("object {key} is over {max} bytes"),
                source: None,
            }),
        }
    }

    /// Reads a whole small object into memory with its metadata, or says it is larger than
    /// `max` (for callers that treat an oversized object differently from a failing store).
    async fn get_within(&self, key: &Key, max: u64) -> Result<Within, StorageError> {
        let mut got = self.get(key, None).await?;
        if got.meta.size > max {
            return Ok(Within::TooLarge);
        }
        let mut buf = BytesMut::with_capacity(got.meta.size as usize);
        while let Some(chunk) = got.body.next().await {
            let chunk = chunk.map_err(|e| StorageError::backend(format!("reading {key}"), e))?;
            if (buf.len() + chunk.len()) as u64 > max {
                return Ok(Within::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Within::Read {
            meta: got.meta,
            bytes: buf.freeze(),
        })
    }

    /// Writes a small object from memory.
    async fn put_bytes(
        &self,
        key: &Key,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError> {
        self.put(key, bytes_stream(bytes), mode).await
    }

    /// Reads a small object, first creating it from `make` if it does not exist. The write
    /// is create-only, so processes racing to create it all end up with the one value that
    /// won: for values made once and shared, such as signing keys.
    async fn get_or_create<F>(&self, key: &Key, max: u64, make: F) -> Result<Bytes, StorageError>
    where
        F: FnOnce() -> Result<Bytes, StorageError> + Send,
    {
        let mut make = Some(make);
        // Made at most once: a retry after losing the race and then finding the object gone
        // offers the same value again.
        let mut made: Option<Bytes> = None;
        loop {
            match self.get_bytes(key, max).await {
                Ok(bytes) => return Ok(bytes),
                Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            let value = match (made.clone(), make.take()) {
                (Some(value), _) => value,
                (None, Some(make)) => made.insert(make()?).clone(),
                (None, None) => {
                    return Err(StorageError::NotFound {
                        key: key.to_string(),
                    });
                }
            };
            match self.put_bytes(key, value.clone(), PutMode::Create).await {
                Ok(_) => return Ok(value),
                // Another process created it first: read theirs.
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the object exists.
    async fn exists(&self, key: &Key) -> Result<bool, StorageError> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lists every key under `prefix`, following pages (for small listings only).
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let mut out = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .list(
                    prefix,
                    ListOptions {
                        start_after: start_after.take(),
                        ..ListOptions::default()
                    },
                )
                .await?;
            out.extend(page.objects);
            match page.next {
                Some(next) => start_after = Some(next),
                None => return Ok(out),
            }
        }
    }
}

impl<T: Storage + ?Sized> StorageExt for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_grammar() {
        for good in [
            "a",
            "blobs/sha256/ab12",
            "catalog/team-a/x!",
            "_uploads/u/state.json",
        ] {
            assert!(Key::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../x",
            "a/../b",
            "a/.hidden",
            "a b",
            "a\\b",
            "é",
            "a/%2e",
        ] {
            assert!(Key::new(bad).is_err(), "{bad}");
        }
        assert!(Key::new("x".repeat(1025)).is_err());
    }
}
