//! Manifests and tags: push (with reference checks, subjects and several tags at once), pull by
//! tag or digest, and delete. Manifest bytes are stored exactly as pushed, under `blobs/`.

use bytes::Bytes;
use futures_util::future::try_join_all;
use oci_storage_core::{Digest, DigestAlgorithm, Key, PutMode, StorageError, StorageExt};
use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, RegistryError, Result, storage};
use super::manifest_doc::ManifestDoc;
use super::{Reference, Registry, RepoName, Tag, layout};
use crate::records;

/// What a tag or a manifest revision points at; stored as JSON so that HEAD needs one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestLink {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest push.
#[derive(Debug)]
pub struct PutManifest {
    pub reference: Reference,
    /// The request's Content-Type.
    pub content_type: Option<String>,
    pub bytes: Bytes,
    /// Further tags to point at the manifest (`?tag=`).
    pub extra_tags: Vec<Tag>,
}

/// The result of a manifest push.
#[derive(Debug)]
pub struct PutManifestOutcome {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub tags: Vec<Tag>,
}

/// A manifest read back.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub link: ManifestLink,
    pub bytes: Bytes,
}

/// A record over its bound: the manifest that would make it is refused.
fn too_large(e: records::TooLarge) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid, e.to_string())
}

fn manifest_unknown(reference: &Reference) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestUnknown, "manifest unknown to registry")
        .with_detail(serde_json::json!({ "reference": reference.to_string() }))
}

fn immutable(tag: &Tag) -> RegistryError {
    RegistryError::new(
        ErrorCode::Denied,
        format!("tag {tag} is immutable: it cannot be moved or deleted"),
    )
    .with_detail(serde_json::json!({ "tag": tag.to_string() }))
}

fn blob_missing(digest: &Digest) -> RegistryError {
    RegistryError::new(
        ErrorCode::ManifestBlobUnknown,
        format!("manifest references {digest}, which is not in this repository"),
    )
    .with_detail(serde_json::json!({ "digest": digest.to_string() }))
}

impl Registry {
    /// Validates and stores a manifest, then points its tags at it.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        put: PutManifest,
    ) -> Result<PutManifestOutcome> {
        let max = self.settings.max_manifest_bytes;
        if put.bytes.len() as u64 > max {
            return Err(RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("manifest exceeds the limit of {max} bytes"),
            )
            .with_status(413));
        }
        let algorithm = match &put.reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => DigestAlgorithm::Sha256,
        };
        let digest = algorithm.digest(&put.bytes);
        if let Reference::Digest(expected) = &put.reference
            && *expected != digest
        {
            return Err(RegistryError::new(
                ErrorCode::DigestInvalid,
                "manifest digest does not match the reference",
            )
            .with_detail(serde_json::json!({
                "expected": expected.to_string(),
                "actual": digest.to_string(),
            })));
        }
        let doc = ManifestDoc::parse(&put.bytes, put.content_type.as_deref())?;
        self.check_references(repo, &doc).await?;

        let mut tags = put.extra_tags;
        if let Reference::Tag(tag) = &put.reference {
            tags.insert(0, tag.clone());
        }
        let mut seen = std::collections::HashSet::new();
        tags.retain(|t| seen.insert(t.clone()));
        for tag in tags.iter().filter(|t| self.settings.is_immutable(t)) {
            if let Some(current) = self.read_link(&layout::tag(repo, tag)).await?
                && current.digest != digest
            {
                return Err(immutable(tag));
            }
        }
        let link = ManifestLink {
            digest: digest.clone(),
            media_type: doc.media_type.clone(),
            size: put.bytes.len() as u64,
        };
        // Content first, then the links that make it reachable: a crash in between leaves
        // unreachable content, never a dangling link. Written even when stored already, so
        // that its age tells garbage collection it is in use again.
        self.storage
            .put_bytes(
                &layout::blob(&digest),
                put.bytes.clone(),
                PutMode::Overwrite,
            )
            .await
            .map_err(storage("storing a manifest"))?;
        self.write_link(&layout::manifest_link(repo, &digest), &link)
            .await?;
        if let Some(subject) = &doc.subject {
            let descriptor = doc.referrer_descriptor(&digest, link.size);
            let bytes = records::REFERRER_ENTRY
                .encode(&descriptor)
                .map_err(too_large)?;
            self.storage
                .put_bytes(
                    &layout::referrer(repo, subject, &digest),
                    bytes,
                    PutMode::Overwrite,
                )
                .await
                .map_err(storage("recording a referrer"))?;
        }
        self.ensure_in_catalog(repo).await?;
        self.cache
            .put_link(repo.as_str(), &digest.to_string(), &link);
        for tag in &tags {
            if self.settings.is_immutable(tag) {
                self.create_immutable_tag(repo, tag, &link).await?;
            } else {
                self.write_link(&layout::tag(repo, tag), &link).await?;
            }
            self.cache.put_link(repo.as_str(), tag.as_str(), &link);
        }
        // A garbage collection may have swept a reference between the check and the tag:
        // look again, now that the tag makes the manifest a root for every later run.
        if let Err(e) = self.check_references(repo, &doc).await {
            tracing::error!(repository = %repo, manifest = %digest, error = %e.message, "a reference of a pushed manifest went missing after the push was checked");
            return Err(RegistryError::new(
                ErrorCode::Unknown,
                format!("{}: push the image again", e.message),
            )
            .with_status(500));
        }
        Ok(PutManifestOutcome {
            digest,
            subject: doc.subject,
            tags,
        })
    }

    /// Every blob and child manifest the manifest references is in the repository (linked)
    /// and its content is stored; what garbage collection took away meanwhile is put back.
    async fn check_references(&self, repo: &RepoName, doc: &ManifestDoc) -> Result<()> {
        let blobs = doc.blobs.iter().map(|d| (d, layout::blob_link(repo, d)));
        let children = doc
            .children
            .iter()
            .map(|d| (d, layout::manifest_link(repo, d)));
        let checks = blobs.map(|(d, link)| async move {
            if self.exists_or_restored(&link).await?
                && self.exists_or_restored(&layout::blob(d)).await?
            {
                Ok(())
            } else {
                Err(blob_missing(d))
            }
        });
        try_join_all(checks).await?;
        // A child brings back what it needs too (its layers may have been collected with it).
        let children = children.map(|(d, link)| async move {
            self.reinstate(repo, d).await?;
            if self
                .storage
                .exists(&link)
                .await
                .map_err(storage("checking index references"))?
                && self
                    .storage
                    .exists(&layout::blob(d))
                    .await
                    .map_err(storage("checking index references"))?
            {
                Ok(())
            } else {
                Err(blob_missing(d))
            }
        });
        try_join_all(children).await?;
        Ok(())
    }

    /// Stores a manifest fetched by the pull-through proxy: exact bytes, revision link and an
    /// optional tag. Referenced blobs are not required (the proxy fetches them on demand).
    pub async fn cache_manifest(
        &self,
        repo: &RepoName,
        bytes: Bytes,
        digest: &Digest,
        media_type: &str,
        tag: Option<&Tag>,
    ) -> Result<ManifestLink> {
        let link = ManifestLink {
            digest: digest.clone(),
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
        };
        match self
            .storage
            .put_bytes(&layout::blob(digest), bytes, PutMode::Create)
            .await
        {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(storage("caching a manifest")(e)),
        }
        self.write_link(&layout::manifest_link(repo, digest), &link)
            .await?;
        self.ensure_in_catalog(repo).await?;
        self.cache
            .put_link(repo.as_str(), &digest.to_string(), &link);
        if let Some(tag) = tag {
            self.write_link(&layout::tag(repo, tag), &link).await?;
            self.cache.put_link(repo.as_str(), tag.as_str(), &link);
        }
        Ok(link)
    }

    /// Writes an immutable tag create-only, so two racing first pushes cannot both win.
    pub(super) async fn create_immutable_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        link: &ManifestLink,
    ) -> Result<()> {
        let key = layout::tag(repo, tag);
        let bytes = records::MANIFEST_LINK.encode(link).map_err(too_large)?;
        match self.storage.put_bytes(&key, bytes, PutMode::Create).await {
            Ok(_) => Ok(()),
            Err(StorageError::AlreadyExists { .. }) => match self.read_link(&key).await? {
                Some(current) if current.digest == link.digest => Ok(()),
                _ => Err(immutable(tag)),
            },
            Err(e) => Err(storage("writing a tag")(e)),
        }
    }

    pub(super) async fn write_link(&self, key: &Key, link: &ManifestLink) -> Result<()> {
        let bytes = records::MANIFEST_LINK.encode(link).map_err(too_large)?;
        self.storage
            .put_bytes(key, bytes, PutMode::Overwrite)
            .await
            .map(|_| ())
            .map_err(storage("writing a manifest link"))
    }

    pub(super) async fn read_link(&self, key: &Key) -> Result<Option<ManifestLink>> {
        records::MANIFEST_LINK
            .read(self.storage.as_ref(), key)
            .await
            .map_err(|e| RegistryError::internal("reading a manifest link", e))
    }

    pub(super) async fn ensure_in_catalog(&self, repo: &RepoName) -> Result<()> {
        let key = layout::catalog_entry(repo);
        if self
            .storage
            .exists(&key)
            .await
            .map_err(storage("reading the catalog"))?
        {
            return Ok(());
        }
        match self
            .storage
            .put_bytes(&key, Bytes::new(), PutMode::Create)
            .await
        {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(storage("adding to the catalog")(e)),
        }
    }

    /// What a tag or digest points at (enough for HEAD).
    pub async fn resolve_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestLink> {
        let reference_str = reference.to_string();
        if let Some(link) = self.cache.link(repo.as_str(), &reference_str) {
            return Ok(link);
        }
        let epoch = self.cache.epoch();
        let link = self.resolve_from_storage(repo, reference).await?;
        self.cache
            .put_read_link(epoch, repo.as_str(), &reference_str, &link);
        Ok(link)
    }

    /// Like [`Registry::resolve_manifest`], bypassing the cache (for changes).
    async fn resolve_from_storage(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestLink> {
        let key = match reference {
            Reference::Tag(tag) => layout::tag(repo, tag),
            Reference::Digest(d) => layout::manifest_link(repo, d),
        };
        self.read_link(&key)
            .await?
            .ok_or_else(|| manifest_unknown(reference))
    }

    /// A manifest's exact bytes and media type.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let link = self.resolve_manifest(repo, reference).await?;
        if let Some(bytes) = self.cache.bytes(&link.digest) {
            return Ok(StoredManifest { link, bytes });
        }
        let key = layout::blob(&link.digest);
        let max = self.settings.max_manifest_bytes.max(link.size);
        let bytes = match self.storage.get_bytes(&key, max).await {
            Ok(bytes) => bytes,
            // Linked but not stored: taken away by a garbage collection that raced the push.
            Err(StorageError::NotFound { .. }) if self.restore_from_trash(&key).await? => self
                .storage
                .get_bytes(&key, max)
                .await
                .map_err(storage("reading a manifest"))?,
            Err(StorageError::NotFound { .. }) => return Err(manifest_unknown(reference)),
            Err(e) => return Err(storage("reading a manifest")(e)),
        };
        self.cache.put_bytes(&link.digest, &bytes);
        Ok(StoredManifest { link, bytes })
    }

    /// Deletes a tag for a retention policy, whatever `registry.deleteEnabled` says, never an
    /// immutable one; leaves it (answering `false`) when it was written since `seen`, the
    /// time the policy's decision was based on (pushed again: it is the newest now).
    pub async fn expire_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        seen_version: Option<&str>,
        seen_time: Option<std::time::SystemTime>,
    ) -> Result<bool> {
        if self.settings.is_immutable(tag) {
            return Ok(false);
        }
        let key = layout::tag(repo, tag);
        let meta = match self.storage.head(&key).await {
            Ok(meta) => meta,
            Err(StorageError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(storage("reading a tag")(e)),
        };
        // The version when both have one (listings and HEAD may give times at different
        // precision); the time to the second otherwise.
        let seconds = |t: Option<std::time::SystemTime>| {
            t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        let unchanged = match (seen_version, meta.version.as_deref()) {
            (Some(seen), Some(now)) => seen == now,
            _ => seconds(seen_time) == seconds(meta.last_modified),
        };
        if !unchanged {
            return Ok(false);
        }
        self.storage
            .delete(&key)
            .await
            .map_err(storage("deleting a tag"))?;
        self.cache.forget_link(repo.as_str(), tag.as_str());
        Ok(true)
    }

    /// Deletes a tag (only the tag), or a manifest by digest with its tags and referrer entry.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        self.require_delete_enabled()?;
        match reference {
            Reference::Tag(tag) => {
                // An unreadable link (damaged, or written by an older version) can still be
                // deleted: only its existence matters here.
                let key = layout::tag(repo, tag);
                if !self
                    .storage
                    .exists(&key)
                    .await
                    .map_err(storage("reading a tag"))?
                {
                    return Err(manifest_unknown(reference));
                }
                if self.settings.is_immutable(tag) {
                    return Err(immutable(tag));
                }
                let deleted = self
                    .storage
                    .delete(&layout::tag(repo, tag))
                    .await
                    .map_err(storage("deleting a tag"));
                self.cache.forget_link(repo.as_str(), tag.as_str());
                deleted
            }
            Reference::Digest(digest) => {
                self.resolve_from_storage(repo, reference).await?;
                let manifest = self.get_manifest(repo, reference).await?;
                let mut pointing = Vec::new();
                for tag in self.tag_listing(repo).await?.tags {
                    let key = layout::tag(repo, &tag);
                    let link: Option<ManifestLink> = records::MANIFEST_LINK
                        .read_listed(self.storage.as_ref(), &key)
                        .await
                        .map_err(storage("reading a tag"))?;
                    if link.is_some_and(|l| l.digest == *digest) {
                        if self.settings.is_immutable(&tag) {
                            return Err(immutable(&tag));
                        }
                        pointing.push(key);
                    }
                }
                if let Ok(doc) =
                    ManifestDoc::parse(&manifest.bytes, Some(&manifest.link.media_type))
                    && let Some(subject) = doc.subject
                {
                    self.storage
                        .delete(&layout::referrer(repo, &subject, digest))
                        .await
                        .map_err(storage("deleting a referrer entry"))?;
                }
                for key in pointing {
                    self.storage
                        .delete(&key)
                        .await
                        .map_err(storage("deleting a tag"))?;
                }
                let deleted = self
                    .storage
                    .delete(&layout::manifest_link(repo, digest))
                    .await
                    .map_err(storage("deleting a manifest"));
                self.cache.forget_digest(repo.as_str(), digest);
                deleted
            }
        }
    }
}
