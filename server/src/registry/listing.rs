//! Listings: tags of a repository, the catalog of repositories, and the referrers of a
//! manifest. Tags and catalog page straight through storage listings (`n`, `last`).

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use oci_storage_core::{Digest, ListOptions, PutMode, StorageError, StorageExt};

use super::error::{ErrorCode, RegistryError, Result, storage};
use super::manifest_doc::ReferrerDescriptor;
use super::{Registry, RepoName, Tag, layout};
use crate::records;

/// Every tag of a repository.
#[derive(Debug, Clone, Default)]
pub struct TagListing {
    /// In lexical order.
    pub tags: Vec<Tag>,
    /// The tag written last (the lexically last when the store keeps no times).
    pub newest: Option<Tag>,
    /// When it was written.
    pub last_write: Option<std::time::SystemTime>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    /// Whether more items follow the last one.
    pub more: bool,
}

impl Registry {
    /// Lists keys under `prefix` after `start_after`, mapping each key to an item, until
    /// `n` items (all when `None`) plus one to learn whether more follow.
    async fn page(
        &self,
        prefix: &str,
        start_after: Option<String>,
        n: Option<usize>,
        item: impl Fn(&str) -> Option<String>,
    ) -> Result<Page> {
        let mut items = Vec::new();
        let mut start_after = start_after;
        // `n` comes from the client and may be usize::MAX.
        let wanted = n.map(|n| n.saturating_add(1));
        loop {
            let page = self
                .storage
                .list(
                    prefix,
                    ListOptions {
                        start_after: start_after.take(),
                        limit: wanted.map(|w| w - items.len()),
                        delimiter: false,
                    },
                )
                .await
                .map_err(storage("listing"))?;
            items.extend(page.objects.iter().filter_map(|m| item(m.key.as_str())));
            if wanted.is_some_and(|w| items.len() >= w) {
                break;
            }
            match page.next {
                Some(next) => start_after = Some(next),
                None => break,
            }
        }
        let more = n.is_some_and(|n| items.len() > n);
        if let Some(n) = n {
            items.truncate(n);
        }
        Ok(Page { items, more })
    }

    /// Tags of a repository in lexical order (`n` at most, after `last`).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page> {
        let prefix = layout::tags_prefix(repo);
        let page = if n == Some(0) {
            Page {
                items: Vec::new(),
                more: false,
            }
        } else {
            let start_after = last.map(|l| format!("{prefix}{l}"));
            self.page(&prefix, start_after, n, |k| {
                k.strip_prefix(&prefix).map(str::to_owned)
            })
            .await?
        };
        if page.items.is_empty() && last.is_none() && !self.repository_exists(repo).await? {
            return Err(RegistryError::new(
                ErrorCode::NameUnknown,
                "repository name not known to registry",
            )
            .with_detail(serde_json::json!({ "name": repo.to_string() })));
        }
        Ok(page)
    }

    /// Every tag of a repository, which was written last and when (the last push), from one
    /// listing.
    pub async fn tag_listing(&self, repo: &RepoName) -> Result<TagListing> {
        let prefix = layout::tags_prefix(repo);
        let objects = self
            .storage
            .list_all(&prefix)
            .await
            .map_err(storage("listing tags"))?;
        let mut listing = TagListing::default();
        for object in &objects {
            let Some(tag) = object
                .key
                .as_str()
                .strip_prefix(&prefix)
                .and_then(Tag::parse)
            else {
                continue;
            };
            // Ties (same second) go to the later name, as the lexical order would.
            if object.last_modified >= listing.last_write && object.last_modified.is_some() {
                listing.last_write = object.last_modified;
                listing.newest = Some(tag.clone());
            }
            listing.tags.push(tag);
        }
        listing.tags.sort();
        if listing.newest.is_none() {
            listing.newest = listing.tags.last().cloned();
        }
        Ok(listing)
    }

    pub async fn repository_exists(&self, repo: &RepoName) -> Result<bool> {
        self.storage
            .exists(&layout::catalog_entry(repo))
            .await
            .map_err(storage("reading the catalog"))
    }

    /// Repository names in lexical order (`n` at most, after `last`).
    pub async fn catalog(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        if n == Some(0) {
            return Ok(Page {
                items: Vec::new(),
                more: false,
            });
        }
        let start_after = last.map(layout::catalog_cursor);
        self.page(layout::CATALOG_PREFIX, start_after, n, layout::catalog_name)
            .await
    }

    /// Moves catalog entries of the nested layout of earlier versions into the flat one;
    /// answers how many moved. Walks only the old catalog prefix (one object per repository).
    pub async fn migrate_legacy_catalog(&self) -> Result<usize> {
        let legacy = self
            .storage
            .list_all(layout::LEGACY_CATALOG_PREFIX)
            .await
            .map_err(storage("listing the legacy catalog"))?;
        let mut moved = 0;
        for meta in legacy {
            let Some(repo) =
                layout::legacy_catalog_name(meta.key.as_str()).and_then(RepoName::parse)
            else {
                continue;
            };
            match self
                .storage
                .put_bytes(&layout::catalog_entry(&repo), Bytes::new(), PutMode::Create)
                .await
            {
                Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => return Err(storage("writing the catalog")(e)),
            }
            self.storage
                .delete(&meta.key)
                .await
                .map_err(storage("removing a legacy catalog entry"))?;
            moved += 1;
        }
        Ok(moved)
    }

    /// Manifests whose `subject` is `digest`, optionally only those of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerDescriptor>> {
        let entries = self
            .storage
            .list_all(&layout::referrers_prefix(repo, digest))
            .await
            .map_err(storage("listing referrers"))?;
        let reads = entries.into_iter().map(|meta| {
            let storage = self.storage.clone();
            async move {
                records::REFERRER_ENTRY
                    .read_listed::<ReferrerDescriptor>(storage.as_ref(), &meta.key)
                    .await
            }
        });
        // A few reads at a time: a subject may have thousands of referrers.
        let mut all: Vec<ReferrerDescriptor> = futures_util::stream::iter(reads)
            .buffered(16)
            .try_collect::<Vec<_>>()
            .await
            .map_err(storage("reading a referrer entry"))?
            .into_iter()
            .flatten()
            .collect();
        if let Some(wanted) = artifact_type {
            all.retain(|d| d.artifact_type.as_deref() == Some(wanted));
        }
        Ok(all)
    }
}
