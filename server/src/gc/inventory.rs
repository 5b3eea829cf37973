//! What the storage holds, read once per run: every repository's tags, manifest revisions,
//! blob links and referrer entries (one listing of `repositories/`), and every stored content
//! object (one listing of `blobs/`), with their ages.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use oci_storage_core::{Digest, Key, ObjectMeta, StorageExt};

use crate::registry::{Registry, RegistryError, layout};

/// A stored object's key, size and age.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: Key,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// The store's version token (ETag, generation, inode and time).
    pub version: Option<String>,
}

impl From<ObjectMeta> for Object {
    fn from(m: ObjectMeta) -> Self {
        Self {
            key: m.key,
            size: m.size,
            modified: m.last_modified,
            version: m.version,
        }
    }
}

impl Object {
    /// Written before `cutoff` (an object without a time counts as old).
    pub fn older_than(&self, cutoff: SystemTime) -> bool {
        self.modified.is_none_or(|m| m < cutoff)
    }
}

/// One repository's links.
#[derive(Debug, Default)]
pub struct Repository {
    /// Tags (their targets are read later, from the records), with their push times.
    pub tags: Vec<Object>,
    pub manifests: BTreeMap<Digest, Object>,
    pub blobs: BTreeMap<Digest, Object>,
    /// (subject, referrer) → the entry.
    pub referrers: Vec<(Digest, Digest, Object)>,
}

/// Everything a run decides from.
#[derive(Debug, Default)]
pub struct Inventory {
    pub repositories: BTreeMap<String, Repository>,
    pub content: HashMap<Digest, Object>,
}

impl Inventory {
    /// Lists the registry's links, then its content (in that order: a push writes content
    /// before links, so content a listed link names was written before the listing saw it).
    pub async fn read(registry: &Registry) -> Result<Self, RegistryError> {
        let storage = registry.storage();
        let mut inventory = Self::default();
        let links = storage
            .list_all("repositories/")
            .await
            .map_err(crate::registry::error::storage("listing repositories"))?;
        for meta in links {
            inventory.add_link(meta);
        }
        let content = storage
            .list_all(layout::BLOBS_PREFIX)
            .await
            .map_err(crate::registry::error::storage("listing content"))?;
        for meta in content {
            if let Some(d) = layout::digest_under(meta.key.as_str(), layout::BLOBS_PREFIX) {
                inventory.content.insert(d, meta.into());
            }
        }
        Ok(inventory)
    }

    /// Files a key under `repositories/`: `<repo>/_<kind>/<rest>`, the repository's name
    /// ending before its first `_` segment (names' components never start with `_`).
    fn add_link(&mut self, meta: ObjectMeta) {
        let Some(path) = meta.key.as_str().strip_prefix("repositories/") else {
            return;
        };
        let segments: Vec<&str> = path.split('/').collect();
        let Some(at) = segments.iter().position(|s| s.starts_with('_')) else {
            return;
        };
        if at == 0 {
            return;
        }
        let repo = segments[..at].join("/");
        let digest = |alg: &str, hex: &str| format!("{alg}:{hex}").parse::<Digest>().ok();
        let entry = || Object::from(meta.clone());
        let repository = self.repositories.entry(repo).or_default();
        match &segments[at..] {
            ["_tags", _] => repository.tags.push(entry()),
            ["_manifests", alg, hex] => {
                if let Some(d) = digest(alg, hex) {
                    repository.manifests.insert(d, entry());
                }
            }
            ["_blobs", alg, hex] => {
                if let Some(d) = digest(alg, hex) {
                    repository.blobs.insert(d, entry());
                }
            }
            ["_referrers", alg, hex, referrer] => {
                let subject = digest(alg, hex);
                let referrer = referrer
                    .split_once('-')
                    .and_then(|(alg, hex)| digest(alg, hex));
                if let (Some(subject), Some(referrer)) = (subject, referrer) {
                    repository.referrers.push((subject, referrer, entry()));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: Key::new(key).unwrap(),
            size: 0,
            last_modified: None,
            version: None,
        }
    }

    #[test]
    fn keys_are_filed_under_their_repository() {
        let hex = "a".repeat(64);
        let mut inv = Inventory::default();
        for key in [
            "repositories/team/app/_tags/v1".to_owned(),
            format!("repositories/team/app/_manifests/sha256/{hex}"),
            format!("repositories/team/app/_blobs/sha256/{hex}"),
            format!("repositories/team/app/_referrers/sha256/{hex}/sha256-{hex}"),
            "repositories/a/_tags/latest".to_owned(),
            "repositories/_tags/x".to_owned(),
            "repositories/a/_blobs/sha256/not-hex".to_owned(),
        ] {
            inv.add_link(meta(&key));
        }
        let app = &inv.repositories["team/app"];
        assert_eq!(app.tags.len(), 1);
        assert_eq!(app.manifests.len(), 1);
        assert_eq!(app.blobs.len(), 1);
        assert_eq!(app.referrers.len(), 1);
        assert_eq!(inv.repositories["a"].tags.len(), 1);
        assert!(inv.repositories["a"].blobs.is_empty());
        assert_eq!(inv.repositories.len(), 2);
    }
}
