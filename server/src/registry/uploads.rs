//! Blob uploads: monolithic (`POST ?digest=`), single PUT, and chunked (`PATCH`…`PUT`).
//!
//! A session is a small state object in storage (`uploads/<id>/state.json`, written with
//! compare-and-swap) plus a storage multipart upload holding the chunks, so any replica can
//! continue a session. Digests are computed while bytes stream; the running hash state is
//! cached in memory by session and offset, and recomputed from storage when another process
//! took the previous chunk. A blob becomes visible only after its digest matched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use oci_storage_core::digest::{
    ContentMismatch, Expectation, OutcomeCell, content_mismatch, hashing_stream,
};
use oci_storage_core::{
    ByteStream, Digest, DigestAlgorithm, Hasher, Key, PartInfo, PutMode, StorageError, StorageExt,
    Within,
};
use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, RegistryError, Result, storage};
use super::{Registry, RepoName, layout};

/// Most sessions whose running hash is kept in memory.
const MAX_CACHED_HASHERS: usize = 4096;
/// Cached hashes older than this are dropped when the cache is full (their session most
/// likely ended on another replica).
const HASHER_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
/// Most chunks one session may have: keeps its state object small and object stores within
/// their part limits (S3 joins at most 10,000 parts).
const MAX_CHUNKS: usize = 4000;
/// Largest session state object read back.
const MAX_STATE_BYTES: u64 = 4 * 1024 * 1024;

/// Where an upload session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
}

/// One chunk of an upload as received.
pub struct UploadChunk {
    /// The chunk's first byte, from `Content-Range` (must equal the session offset).
    pub start: Option<u64>,
    /// The chunk's length, when `Content-Range` or `Content-Length` declared it.
    pub len: Option<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for UploadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadChunk")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadState {
    repository: String,
    algorithm: String,
    offset: u64,
    multipart_id: Option<String>,
    parts: Vec<PartInfo>,
    /// Set (with compare-and-swap) by the one request that completes the session, so a
    /// duplicated PUT on another replica cannot join or discard it at the same time.
    #[serde(default)]
    completing: bool,
}

/// Running hashes of sessions, by id, valid at the recorded offset.
#[derive(Debug, Default)]
pub(super) struct HasherCache(Mutex<HashMap<String, (u64, Hasher, std::time::Instant)>>);

impl HasherCache {
    fn take(&self, id: &str, offset: u64) -> Option<Hasher> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(id) {
            Some((at, hasher, _)) if at == offset => Some(hasher),
            _ => None,
        }
    }

    fn put(&self, id: &str, offset: u64, hasher: Hasher) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_HASHERS && !map.contains_key(id) {
            map.retain(|_, (_, _, at)| at.elapsed() < HASHER_MAX_AGE);
        }
        if map.len() < MAX_CACHED_HASHERS || map.contains_key(id) {
            map.insert(id.to_owned(), (offset, hasher, std::time::Instant::now()));
        }
    }

    fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

fn upload_unknown() -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadUnknown,
        "blob upload unknown to registry",
    )
}

fn being_completed() -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadInvalid,
        "the upload is being completed by another request",
    )
    .with_status(409)
}

fn valid_upload_id(id: &str) -> Result<()> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(upload_unknown())
    }
}

/// Maps the failure of a write whose input was a client body wrapped in a hashing stream.
fn input_error(err: StorageError, context: &str) -> RegistryError {
    match err {
        StorageError::Input(io) => match content_mismatch(&io) {
            Some(ContentMismatch::Digest { expected, actual }) => RegistryError::new(
                ErrorCode::DigestInvalid,
                "provided digest did not match uploaded content",
            )
            .with_detail(serde_json::json!({
                "expected": expected.to_string(),
                "actual": actual.to_string(),
            })),
            Some(ContentMismatch::Size { expected, actual }) => RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("content is {actual} bytes, but {expected} were declared"),
            ),
            Some(ContentMismatch::TooLarge { limit }) => RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("content exceeds {limit} bytes"),
            ),
            None => RegistryError::new(
                ErrorCode::BlobUploadInvalid,
                format!("upload body could not be read: {io}"),
            ),
        },
        other => storage(context)(other),
    }
}

fn outcome(cell: &OutcomeCell) -> Option<oci_storage_core::digest::StreamOutcome> {
    cell.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Registry {
    /// Opens an upload session.
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        algorithm: DigestAlgorithm,
    ) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        // The storage upload is opened with the session, so its id is recorded before any
        // part exists: whatever a racing or failed chunk leaves is found by cancel and expiry.
        let data_key = layout::upload_data(&id);
        let multipart_id = self
            .storage
            .create_multipart(&data_key)
            .await
            .map_err(storage("starting a multipart upload"))?;
        let state = UploadState {
            repository: repo.to_string(),
            algorithm: algorithm.as_str().to_owned(),
            offset: 0,
            multipart_id: Some(multipart_id.clone()),
            parts: Vec::new(),
            completing: false,
        };
        if let Err(e) = self.write_state(&id, &state, PutMode::Create).await {
            let _ = self.storage.abort_multipart(&data_key, &multipart_id).await;
            return Err(e);
        }
        Ok(UploadStatus { id, offset: 0 })
    }

    /// Stores a whole blob sent in one request (`POST ?digest=` or a PUT with the whole body).
    pub async fn upload_monolithic(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
        len: Option<u64>,
    ) -> Result<()> {
        self.store_verified_blob(digest, body, len).await?;
        self.link_blob(repo, digest).await
    }

    /// Reports a session's progress.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let (state, _) = self.read_state(repo, id).await?;
        Ok(UploadStatus {
            id: id.to_owned(),
            offset: state.offset,
        })
    }

    /// Appends a chunk (`PATCH`).
    pub async fn upload_chunk(
        &self,
        repo: &RepoName,
        id: &str,
        chunk: UploadChunk,
    ) -> Result<UploadStatus> {
        let (mut state, version) = self.read_state(repo, id).await?;
        if state.completing {
            return Err(being_completed());
        }
        self.append_chunk(id, &mut state, version, chunk).await?;
        Ok(UploadStatus {
            id: id.to_owned(),
            offset: state.offset,
        })
    }

    /// Completes a session (`PUT ?digest=`), with an optional last chunk.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        last: Option<UploadChunk>,
    ) -> Result<()> {
        let (mut state, mut version) = self.read_state(repo, id).await?;
        if state.completing {
            return Err(being_completed());
        }
        if state.parts.is_empty() {
            // Nothing was PATCHed: the body is the whole blob; stream it straight into place.
            if let Some(start) = last.as_ref().and_then(|c| c.start).filter(|s| *s != 0) {
                return Err(range_invalid(start, 0));
            }
            let (body, len) = match last {
                Some(chunk) => (chunk.body, chunk.len),
                None => (
                    oci_storage_core::storage::bytes_stream(Bytes::new()),
                    Some(0),
                ),
            };
            let result = self.upload_monolithic(repo, digest, body, len).await;
            self.end_session(id, &state).await;
            return result;
        }
        if let Some(chunk) = last {
            version = self.append_chunk(id, &mut state, version, chunk).await?;
        }
        // Claim the completion: a duplicated PUT elsewhere now gets a conflict instead of
        // joining the parts while this one reads them.
        state.completing = true;
        self.write_state(id, &state, PutMode::Update(version))
            .await
            .map_err(|_| being_completed())?;
        let result = self.assemble(id, &state, digest).await;
        if result.is_ok() {
            self.link_blob(repo, digest).await?;
        }
        self.end_session(id, &state).await;
        result
    }

    /// Abandons a session (`DELETE`).
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let (state, _) = self.read_state(repo, id).await?;
        self.end_session(id, &state).await;
        Ok(())
    }

    /// How many upload sessions the storage holds (of every replica), counting up to `limit`.
    pub async fn count_upload_sessions(&self, limit: usize) -> Result<usize> {
        let mut count = 0;
        let mut start_after = None;
        loop {
            let page = self
                .storage
                .list(
                    layout::UPLOADS_PREFIX,
                    oci_storage_core::storage::ListOptions {
                        start_after,
                        limit: Some(1000),
                        delimiter: true,
                    },
                )
                .await
                .map_err(storage("listing upload sessions"))?;
            count += page.prefixes.len();
            match page.next {
                Some(next) if count < limit => start_after = Some(next),
                _ => return Ok(count.min(limit)),
            }
        }
    }

    /// Discards sessions untouched for longer than the configured expiry. Returns how many.
    /// A session whose state cannot be read, or keys of a session without state, are removed
    /// too once as old (with a log line), so nothing under `uploads/` stays for ever.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let now = SystemTime::now();
        let mut sessions: std::collections::BTreeMap<String, SessionKeys> = Default::default();
        for meta in self
            .storage
            .list_all(layout::UPLOADS_PREFIX)
            .await
            .map_err(storage("listing upload sessions"))?
        {
            let Some((id, name)) = meta
                .key
                .as_str()
                .strip_prefix(layout::UPLOADS_PREFIX)
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            let old = meta
                .last_modified
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default()
                >= self.settings.upload_expiry;
            let session = sessions.entry(id.to_owned()).or_insert(SessionKeys {
                all_expired: true,
                ..SessionKeys::default()
            });
            session.all_expired &= old;
            session.has_state |= name == "state.json";
            session.keys.push(meta.key.clone());
        }
        let mut expired = 0;
        for (id, session) in sessions {
            if !session.all_expired {
                continue;
            }
            if session.has_state {
                match self.load_state(&id).await {
                    Ok((state, _)) => {
                        self.end_session(&id, &state).await;
                        expired += 1;
                        continue;
                    }
                    Err(e) if e.code == ErrorCode::BlobUploadUnknown => continue,
                    Err(e) => {
                        tracing::warn!(upload = %id, error = %e.message, "discarding an expired upload session whose state cannot be read");
                    }
                }
            }
            for key in session.keys {
                if let Err(e) = self.storage.delete(&key).await {
                    tracing::warn!(error = %e, upload = %id, "could not discard upload session");
                }
            }
            expired += 1;
        }
        Ok(expired)
    }

    async fn load_state(&self, id: &str) -> Result<(UploadState, String)> {
        valid_upload_id(id)?;
        let key = layout::upload_state(id);
        // The version must describe the bytes read: head first could race a writer, so the
        // object is read once and its version taken from that read.
        let (meta, bytes) = match self.storage.get_within(&key, MAX_STATE_BYTES).await {
            Ok(Within::Read { meta, bytes }) => (meta, bytes),
            Ok(Within::TooLarge) => {
                return Err(RegistryError::internal(
                    "reading an upload session",
                    format!("state object is over {MAX_STATE_BYTES} bytes"),
                ));
            }
            Err(StorageError::NotFound { .. }) => return Err(upload_unknown()),
            Err(e) => return Err(storage("reading an upload session")(e)),
        };
        let state: UploadState = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::internal("decoding an upload session", e))?;
        Ok((state, meta.version.unwrap_or_default()))
    }

    async fn read_state(&self, repo: &RepoName, id: &str) -> Result<(UploadState, String)> {
        let (state, version) = self.load_state(id).await?;
        if state.repository != repo.as_str() {
            return Err(upload_unknown());
        }
        Ok((state, version))
    }

    async fn write_state(&self, id: &str, state: &UploadState, mode: PutMode) -> Result<String> {
        let bytes = serde_json::to_vec(state).expect("upload state serializes");
        match self
            .storage
            .put_bytes(&layout::upload_state(id), Bytes::from(bytes), mode)
            .await
        {
            Ok(meta) => Ok(meta.version.unwrap_or_default()),
            Err(StorageError::Precondition { .. } | StorageError::NotFound { .. }) => {
                Err(RegistryError::new(
                    ErrorCode::BlobUploadInvalid,
                    "the upload session was changed concurrently",
                )
                .with_status(409))
            }
            Err(e) => Err(storage("saving an upload session")(e)),
        }
    }

    fn algorithm(state: &UploadState) -> DigestAlgorithm {
        state.algorithm.parse().unwrap_or(DigestAlgorithm::Sha256)
    }

    /// Writes a chunk as the session's next part; answers the new state version.
    async fn append_chunk(
        &self,
        id: &str,
        state: &mut UploadState,
        version: String,
        chunk: UploadChunk,
    ) -> Result<String> {
        if let Some(start) = chunk.start
            && start != state.offset
        {
            return Err(range_invalid(start, state.offset));
        }
        let end = match chunk.len {
            Some(len) => Some(state.offset.checked_add(len).ok_or_else(|| {
                RegistryError::new(ErrorCode::BlobUploadInvalid, "chunk length out of range")
                    .with_status(416)
            })?),
            None => None,
        };
        if state.parts.len() >= MAX_CHUNKS {
            return Err(RegistryError::new(
                ErrorCode::BlobUploadInvalid,
                format!("an upload may have at most {MAX_CHUNKS} chunks; send larger chunks"),
            ));
        }
        let data_key = layout::upload_data(id);
        let opened_here = state.multipart_id.is_none();
        let multipart_id = match &state.multipart_id {
            Some(m) => m.clone(),
            None => self
                .storage
                .create_multipart(&data_key)
                .await
                .map_err(storage("starting a multipart upload"))?,
        };
        // Continue the running hash if this process saw the previous chunks.
        let hasher = self
            .hashers
            .take(id, state.offset)
            .or_else(|| (state.offset == 0).then(|| Self::algorithm(state).hasher()));
        let hash_known = hasher.is_some();
        let hasher = hasher.unwrap_or_else(|| Self::algorithm(state).hasher());
        let (body, cell) = hashing_stream(
            chunk.body,
            hasher,
            state.offset,
            Expectation {
                size: end,
                ..Expectation::default()
            },
        );
        let number = state.parts.len() as u32 + 1;
        let part = match self
            .storage
            .put_part(&data_key, &multipart_id, number, body)
            .await
        {
            Ok(part) => part,
            Err(e) => {
                if opened_here {
                    // Started for this chunk and recorded nowhere: do not leave it behind.
                    let _ = self.storage.abort_multipart(&data_key, &multipart_id).await;
                }
                return Err(input_error(e, "writing an upload chunk"));
            }
        };
        state.multipart_id = Some(multipart_id.clone());
        if part.size > 0 {
            state.offset += part.size;
            state.parts.push(part);
        }
        let version = match self.write_state(id, state, PutMode::Update(version)).await {
            Ok(version) => version,
            Err(e) => {
                // Another request took this offset. Its upload keeps the part (an unrecorded
                // part is discarded with the session); one opened here is recorded nowhere.
                if opened_here {
                    let _ = self.storage.abort_multipart(&data_key, &multipart_id).await;
                }
                return Err(e);
            }
        };
        if hash_known && let Some(done) = outcome(&cell) {
            self.hashers.put(id, state.offset, done.state);
        }
        Ok(version)
    }

    /// Joins a session's parts, verifies the digest, and makes the blob visible.
    async fn assemble(&self, id: &str, state: &UploadState, digest: &Digest) -> Result<()> {
        let data_key = layout::upload_data(id);
        let multipart_id = state.multipart_id.as_deref().unwrap_or_default();
        if state.parts.is_empty() {
            let empty = oci_storage_core::storage::bytes_stream(Bytes::new());
            return self.store_verified_blob(digest, empty, Some(0)).await;
        }
        let cached = self
            .hashers
            .take(id, state.offset)
            .filter(|h| Self::algorithm(state) == digest.algorithm() && matches_alg(h, digest));
        if let Some(hasher) = cached {
            // This process saw every chunk, so the digest is known before anything is joined:
            // join straight into the blob's place, with no staging object to copy.
            check_digest(digest, hasher.finish())?;
            if !self.blob_stored(digest).await? {
                self.storage
                    .complete_multipart(&layout::blob(digest), multipart_id, &state.parts)
                    .await
                    .map_err(storage("joining upload chunks"))?;
            }
            return Ok(());
        }
        // Chunks came through other replicas too: join into staging, hash, then publish.
        self.storage
            .complete_multipart(&data_key, multipart_id, &state.parts)
            .await
            .map_err(storage("joining upload chunks"))?;
        let actual = self.hash_object(&data_key, digest.algorithm()).await?;
        check_digest(digest, actual)?;
        if !self.blob_stored(digest).await? {
            self.storage
                .copy(&data_key, &layout::blob(digest))
                .await
                .map_err(storage("storing an uploaded blob"))?;
        }
        Ok(())
    }

    /// Recomputes an object's digest by reading it (when the running hash is not at hand).
    async fn hash_object(&self, key: &Key, algorithm: DigestAlgorithm) -> Result<Digest> {
        let mut got = self
            .storage
            .get(key, None)
            .await
            .map_err(storage("reading an upload to hash it"))?;
        let mut hasher = algorithm.hasher();
        while let Some(chunk) = got.body.next().await {
            hasher.update(&chunk.map_err(|e| RegistryError::internal("hashing an upload", e))?);
        }
        Ok(hasher.finish())
    }

    /// Streams a whole blob into place, committing only if its digest (and size) match.
    async fn store_verified_blob(
        &self,
        digest: &Digest,
        body: ByteStream,
        len: Option<u64>,
    ) -> Result<()> {
        let expect = Expectation {
            digest: Some(digest.clone()),
            size: len,
            max_size: None,
        };
        let (verified, _) = hashing_stream(body, digest.algorithm().hasher(), 0, expect);
        if self.blob_stored(digest).await? {
            // Already stored: verify what the client sent without writing it again.
            let mut verified = verified;
            while let Some(chunk) = verified.next().await {
                chunk.map_err(|e| input_error(StorageError::Input(e), "verifying a blob"))?;
            }
            return Ok(());
        }
        self.storage
            .put(&layout::blob(digest), verified, PutMode::Overwrite)
            .await
            .map(|_| ())
            .map_err(|e| input_error(e, "storing a blob"))
    }

    /// Removes a session's state, parts and staging object (best effort: expiry retries).
    async fn end_session(&self, id: &str, state: &UploadState) {
        self.hashers.forget(id);
        let data_key = layout::upload_data(id);
        if let Some(multipart_id) = &state.multipart_id
            && let Err(e) = self.storage.abort_multipart(&data_key, multipart_id).await
        {
            // Keep the state: it is how expiry finds the parts to retry.
            tracing::warn!(error = %e, upload = id, "could not discard upload parts");
            return;
        }
        for key in [data_key, layout::upload_state(id)] {
            if let Err(e) = self.storage.delete(&key).await {
                tracing::warn!(error = %e, upload = id, "could not discard upload session");
            }
        }
    }
}

/// The keys of one upload session under `uploads/<id>/`, as the expiry pass finds them.
#[derive(Debug, Default)]
struct SessionKeys {
    /// Every key is older than the upload expiry.
    all_expired: bool,
    has_state: bool,
    keys: Vec<Key>,
}

fn check_digest(expected: &Digest, actual: Digest) -> Result<()> {
    if actual == *expected {
        return Ok(());
    }
    Err(RegistryError::new(
        ErrorCode::DigestInvalid,
        "provided digest did not match uploaded content",
    )
    .with_detail(serde_json::json!({
        "expected": expected.to_string(),
        "actual": actual.to_string(),
    })))
}

fn matches_alg(h: &Hasher, digest: &Digest) -> bool {
    matches!(
        (h, digest.algorithm()),
        (Hasher::Sha256(_), DigestAlgorithm::Sha256) | (Hasher::Sha512(_), DigestAlgorithm::Sha512)
    )
}

fn range_invalid(start: u64, offset: u64) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadInvalid,
        format!("chunk starts at {start}, but the upload has {offset} bytes"),
    )
    .with_status(416)
    .with_detail(serde_json::json!({ "offset": offset }))
}
