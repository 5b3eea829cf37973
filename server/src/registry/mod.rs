//! The registry service: OCI Distribution semantics (blobs, uploads, manifests, tags,
//! referrers, catalog) over a [`Storage`]. Called by the HTTP layers; knows nothing of HTTP.
//! Storage is the only source of truth; what is held in memory here is a cache that any
//! process can lose or rebuild.

mod blobs;
mod cache;
pub mod error;
mod export;
pub mod layout;
mod listing;
pub mod manifest_doc;
mod manifests;
pub mod names;
mod strict_json;
mod trash;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use oci_storage_core::Storage;

pub use blobs::BlobRead;
pub use error::{ErrorCode, RegistryError};
pub use export::{RepositoryLinks, TagState};
pub use listing::{Page, TagListing};
pub use manifests::{ManifestLink, PutManifest, PutManifestOutcome, StoredManifest};
pub use names::{Reference, RepoName, Tag};
pub use uploads::{UploadChunk, UploadStatus};

/// Registry behaviour settings (from `registry` in config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_manifest_bytes: u64,
    pub delete_enabled: bool,
    pub upload_expiry: Duration,
    /// How long tag and manifest lookups are trusted without asking storage.
    pub cache_ttl: Duration,
    /// Tags that may not move or be deleted once they exist.
    pub immutable_tags: Vec<glob::Pattern>,
}

impl Settings {
    pub fn is_immutable(&self, tag: &Tag) -> bool {
        self.immutable_tags.iter().any(|p| p.matches(tag.as_str()))
    }
}

/// The registry service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    settings: Arc<Settings>,
    hashers: Arc<uploads::HasherCache>,
    cache: Arc<cache::ManifestCache>,
}

impl Registry {
    pub fn new(storage: Arc<dyn Storage>, settings: Settings) -> Self {
        Self {
            storage,
            cache: Arc::new(cache::ManifestCache::new(settings.cache_ttl)),
            settings: Arc::new(settings),
            hashers: Arc::default(),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn require_delete_enabled(&self) -> error::Result<()> {
        if self.settings.delete_enabled {
            Ok(())
        } else {
            Err(RegistryError::new(
                ErrorCode::Unsupported,
                "deletes are disabled on this registry",
            ))
        }
    }
}
