//! Reading a repository for a backup, and writing it back on restore. The cut reads links in
//! the reverse of the push write order (tags, then revisions, then blob links): a push writes
//! content, then its links, then tags, so every tag read names a manifest whose revision link,
//! content and blobs were written before it. Restores write in push order, so a restore killed
//! at any point leaves no tag or link that names something missing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use bytes::Bytes;
use oci_storage_core::digest::verified_stream;
use oci_storage_core::{ByteStream, Digest, Key, ObjectMeta, PutMode, StorageError, StorageExt};

use super::error::{ErrorCode, RegistryError, Result, storage};
use super::manifest_doc::ManifestDoc;
use super::{ManifestLink, Registry, RepoName, Tag, layout};
use crate::records;

/// A repository's links, as a backup reads them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RepositoryLinks {
    pub tags: BTreeMap<String, ManifestLink>,
    pub manifests: BTreeMap<Digest, ManifestLink>,
    pub blobs: BTreeSet<Digest>,
}

/// A tag as it is in the destination of a restore.
#[derive(Debug, Clone)]
pub struct TagState {
    pub link: ManifestLink,
    pub last_modified: Option<SystemTime>,
}

impl Registry {
    /// Every object under `prefix`, all pages.
    async fn list_under(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.storage
            .list_all(prefix)
            .await
            .map_err(storage("listing a repository"))
    }

    /// Reads the links of `repo`: tags first, then manifest revisions, then blob links.
    pub async fn export_links(&self, repo: &RepoName) -> Result<RepositoryLinks> {
        let mut links = RepositoryLinks::default();
        let tags_prefix = layout::tags_prefix(repo);
        for meta in self.list_under(&tags_prefix).await? {
            let Some(name) = meta.key.as_str().strip_prefix(&tags_prefix) else {
                continue;
            };
            if let Some(link) = records::MANIFEST_LINK
                .read_listed::<ManifestLink>(self.storage.as_ref(), &meta.key)
                .await
                .map_err(storage("reading a tag"))?
            {
                links.tags.insert(name.to_owned(), link);
            }
        }
        let manifests_prefix = layout::manifests_prefix(repo);
        for meta in self.list_under(&manifests_prefix).await? {
            if layout::digest_under(meta.key.as_str(), &manifests_prefix).is_none() {
                continue;
            }
            if let Some(link) = records::MANIFEST_LINK
                .read_listed::<ManifestLink>(self.storage.as_ref(), &meta.key)
                .await
                .map_err(storage("reading a manifest link"))?
            {
                links.manifests.insert(link.digest.clone(), link);
            }
        }
        let blobs_prefix = layout::blob_links_prefix(repo);
        for meta in self.list_under(&blobs_prefix).await? {
            if let Some(d) = layout::digest_under(meta.key.as_str(), &blobs_prefix) {
                links.blobs.insert(d);
            }
        }
        Ok(links)
    }

    /// A manifest's bytes from content, checked against its digest (a backup must not carry
    /// damaged content into every later snapshot).
    pub async fn manifest_content(&self, link: &ManifestLink) -> Result<Bytes> {
        let max = self.settings.max_manifest_bytes.max(link.size);
        let bytes = self
            .storage
            .get_bytes(&layout::blob(&link.digest), max)
            .await
            .map_err(storage("reading a manifest"))?;
        let actual = link.digest.algorithm().digest(&bytes);
        if actual != link.digest {
            return Err(RegistryError::new(
                ErrorCode::Unknown,
                format!(
                    "stored manifest {} is damaged: its bytes hash to {actual}",
                    link.digest
                ),
            ));
        }
        Ok(bytes)
    }

    /// The digest and size of every object under `blobs/` (blobs and manifests), page by page.
    pub async fn content_inventory(&self) -> Result<BTreeMap<Digest, u64>> {
        Ok(self
            .list_under(layout::BLOBS_PREFIX)
            .await?
            .into_iter()
            .filter_map(|m| {
                layout::digest_under(m.key.as_str(), layout::BLOBS_PREFIX).map(|d| (d, m.size))
            })
            .collect())
    }

    /// Streams stored content (a blob or a manifest's bytes), whole.
    pub async fn read_content(&self, digest: &Digest) -> Result<(u64, ByteStream)> {
        let got = self
            .storage
            .get(&layout::blob(digest), None)
            .await
            .map_err(storage("reading content"))?;
        Ok((got.meta.size, got.body))
    }

    /// The size of stored content, if it is stored.
    pub async fn content_size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.storage.head(&layout::blob(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage("checking content")(e)),
        }
    }

    /// Stores content read from elsewhere, verified by digest and size while it streams:
    /// a mismatch commits nothing. Content already stored is left as it is.
    pub async fn import_content(&self, digest: &Digest, size: u64, body: ByteStream) -> Result<()> {
        let checked = verified_stream(body, digest, size);
        match self
            .storage
            .put(&layout::blob(digest), checked, PutMode::Create)
            .await
        {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
            Err(StorageError::Input(e)) => Err(RegistryError::new(
                ErrorCode::DigestInvalid,
                format!("content {digest} did not arrive intact: {e}"),
            )),
            Err(e) => Err(storage("storing content")(e)),
        }
    }

    /// Links a blob to a repository (its content must be stored).
    pub async fn import_blob_link(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.link_blob(repo, digest).await
    }

    /// Writes a manifest revision (its content must be stored) and, if it has a subject, its
    /// referrer entry, as a push does.
    pub async fn import_manifest(
        &self,
        repo: &RepoName,
        link: &ManifestLink,
        bytes: &[u8],
    ) -> Result<()> {
        self.write_link(&layout::manifest_link(repo, &link.digest), link)
            .await?;
        // Content the registry accepted (or the proxy cached) before; one that no longer
        // parses simply has no referrer entry, as when it was first stored.
        if let Ok(doc) = ManifestDoc::parse(bytes, Some(&link.media_type))
            && let Some(subject) = &doc.subject
        {
            let descriptor = doc.referrer_descriptor(&link.digest, link.size);
            let entry = records::REFERRER_ENTRY
                .encode(&descriptor)
                .map_err(|e| RegistryError::internal("recording a referrer", e))?;
            self.storage
                .put_bytes(
                    &layout::referrer(repo, subject, &link.digest),
                    entry,
                    PutMode::Overwrite,
                )
                .await
                .map_err(storage("recording a referrer"))?;
        }
        self.cache
            .put_link(repo.as_str(), &link.digest.to_string(), link);
        Ok(())
    }

    /// Adds the repository to the catalog (after its links, before its tags).
    pub async fn import_catalog_entry(&self, repo: &RepoName) -> Result<()> {
        self.ensure_in_catalog(repo).await
    }

    /// Points a tag at a manifest revision; an immutable tag only if it does not exist yet
    /// (or already points there).
    pub async fn import_tag(&self, repo: &RepoName, tag: &Tag, link: &ManifestLink) -> Result<()> {
        if self.settings.is_immutable(tag) {
            self.create_immutable_tag(repo, tag, link).await?;
        } else {
            self.write_link(&layout::tag(repo, tag), link).await?;
        }
        self.cache.put_link(repo.as_str(), tag.as_str(), link);
        Ok(())
    }

    /// Where a tag points now, and when it was last written (when storage says).
    pub async fn tag_state(&self, repo: &RepoName, tag: &Tag) -> Result<Option<TagState>> {
        let key: Key = layout::tag(repo, tag);
        let meta = match self.storage.head(&key).await {
            Ok(meta) => meta,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage("reading a tag")(e)),
        };
        Ok(self.read_link(&key).await?.map(|link| TagState {
            link,
            last_modified: meta.last_modified,
        }))
    }
}
