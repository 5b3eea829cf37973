//! Blobs: reads, HEAD, delete and cross-repository mount. Content lives once under `blobs/`;
//! a repository serves only the blobs linked to it (uploaded, mounted or referenced).

use std::ops::Range;

use bytes::Bytes;
use oci_storage_core::{Digest, GetResult, ObjectMeta, PutMode, StorageError, StorageExt};

use super::error::{ErrorCode, RegistryError, Result, storage};
use super::{Registry, RepoName, layout};

/// A blob being read.
pub type BlobRead = GetResult;

fn blob_unknown(digest: &Digest) -> RegistryError {
    RegistryError::new(ErrorCode::BlobUnknown, "blob unknown to registry")
        .with_detail(serde_json::json!({ "digest": digest.to_string() }))
}

impl Registry {
    async fn require_link(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        match self.storage.head(&layout::blob_link(repo, digest)).await {
            Ok(_) => Ok(()),
            Err(StorageError::NotFound { .. }) => Err(blob_unknown(digest)),
            Err(e) => Err(storage("checking a blob link")(e)),
        }
    }

    /// Size and metadata of a blob the repository may serve.
    pub async fn blob_meta(&self, repo: &RepoName, digest: &Digest) -> Result<ObjectMeta> {
        self.require_link(repo, digest).await?;
        let key = layout::blob(digest);
        match self.storage.head(&key).await {
            Ok(meta) => Ok(meta),
            // Linked but not stored: taken away by a garbage collection that raced the push.
            Err(StorageError::NotFound { .. }) if self.restore_from_trash(&key).await? => self
                .storage
                .head(&key)
                .await
                .map_err(storage("reading blob metadata")),
            Err(StorageError::NotFound { .. }) => Err(blob_unknown(digest)),
            Err(e) => Err(storage("reading blob metadata")(e)),
        }
    }

    /// Streams a blob (or a range of it) that the repository may serve.
    pub async fn get_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead> {
        self.require_link(repo, digest).await?;
        let key = layout::blob(digest);
        match self.storage.get(&key, range.clone()).await {
            Ok(read) => Ok(read),
            Err(StorageError::NotFound { .. }) if self.restore_from_trash(&key).await? => self
                .storage
                .get(&key, range)
                .await
                .map_err(storage("reading a blob")),
            Err(StorageError::NotFound { .. }) => Err(blob_unknown(digest)),
            Err(e) => Err(storage("reading a blob")(e)),
        }
    }

    /// Where a client may download the blob directly, when storage offers presigned URLs.
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        self.require_link(repo, digest).await?;
        self.storage
            .download_url(&layout::blob(digest))
            .await
            .map_err(storage("presigning a blob download"))
    }

    /// Removes the blob from the repository (the content stays while others reference it).
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.require_delete_enabled()?;
        self.require_link(repo, digest).await?;
        self.storage
            .delete(&layout::blob_link(repo, digest))
            .await
            .map_err(storage("deleting a blob link"))
    }

    /// Lets the repository serve a blob whose content is stored.
    pub(super) async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.storage
            .put_bytes(
                &layout::blob_link(repo, digest),
                Bytes::new(),
                PutMode::Overwrite,
            )
            .await
            .map(|_| ())
            .map_err(storage("linking a blob"))
    }

    /// Whether the blob's content is stored (in any repository).
    pub(super) async fn blob_stored(&self, digest: &Digest) -> Result<bool> {
        self.storage
            .exists(&layout::blob(digest))
            .await
            .map_err(storage("checking blob content"))
    }

    /// Mounts a blob from another repository; `false` when `from` does not have it.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool> {
        match self.blob_meta(from, digest).await {
            Ok(_) => {
                self.link_blob(repo, digest).await?;
                Ok(true)
            }
            Err(e) if e.code == ErrorCode::BlobUnknown => Ok(false),
            Err(e) => Err(e),
        }
    }
}
