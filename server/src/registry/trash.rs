//! The garbage collector's trash. A run moves what it collects to `trash/<run>/<key>` rather
//! than deleting it, and a later run empties the trash of runs older than `gc.delay`. A push
//! that relied on something a run took away finds it again: when a manifest arrives that
//! references a blob link, blob content or child manifest that is missing, it is put back from
//! the newest trash that has it. So a blob acknowledged (201, or 200 on HEAD) before or while
//! a run collects it is never lost to the manifest that follows.

use std::collections::HashSet;

use oci_storage_core::{Digest, Key, StorageError, StorageExt};

use super::error::{Result, storage};
use super::manifest_doc::ManifestDoc;
use super::{Registry, RepoName, layout};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Present,
    Restored,
    Missing,
}

impl Registry {
    /// Moves `key` into run `run`'s trash; `false` if it no longer exists.
    pub async fn move_to_trash(&self, run: &str, key: &Key) -> Result<bool> {
        match self.storage.copy(key, &layout::trashed(run, key)).await {
            Ok(_) => {}
            Err(StorageError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(storage("moving to the trash")(e)),
        }
        self.storage
            .delete(key)
            .await
            .map_err(storage("moving to the trash"))?;
        Ok(true)
    }

    /// Moves a manifest revision link of `repo` into the trash and forgets what this process
    /// remembers of it.
    pub async fn trash_manifest_link(
        &self,
        run: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool> {
        let moved = self
            .move_to_trash(run, &layout::manifest_link(repo, digest))
            .await?;
        self.cache.forget_digest(repo.as_str(), digest);
        Ok(moved)
    }

    /// The runs that have a trash, newest first.
    pub async fn trash_runs(&self) -> Result<Vec<String>> {
        let mut runs = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .storage
                .list(
                    layout::TRASH_PREFIX,
                    oci_storage_core::storage::ListOptions {
                        start_after,
                        limit: None,
                        delimiter: true,
                    },
                )
                .await
                .map_err(storage("listing the trash"))?;
            runs.extend(page.prefixes.iter().filter_map(|p| {
                p.strip_prefix(layout::TRASH_PREFIX)?
                    .strip_suffix('/')
                    .map(str::to_owned)
            }));
            match page.next {
                Some(next) => start_after = Some(next),
                None => break,
            }
        }
        runs.sort_unstable_by(|a, b| b.cmp(a));
        Ok(runs)
    }

    /// Every key some collection's trash holds, with the newest run that holds it; one
    /// listing of the trash.
    pub async fn trash_contents(&self) -> Result<std::collections::HashMap<String, String>> {
        Ok(self
            .storage
            .list_all(layout::TRASH_PREFIX)
            .await
            .map_err(storage("listing the trash"))?
            .into_iter()
            .filter_map(|m| {
                let rest = m.key.as_str().strip_prefix(layout::TRASH_PREFIX)?;
                let (run, key) = rest.split_once('/')?;
                Some((key.to_owned(), run.to_owned()))
            })
            // Listed oldest run first: a key in several runs ends with the newest.
            .collect())
    }

    /// Puts `key` back from the newest trash that has it; whether one did.
    pub(super) async fn restore_from_trash(&self, key: &Key) -> Result<bool> {
        for run in self.trash_runs().await? {
            match self.storage.copy(&layout::trashed(&run, key), key).await {
                Ok(_) => {
                    tracing::info!(key = %key, run = %run, "put back from the garbage collector's trash for a push that relies on it");
                    return Ok(true);
                }
                Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(storage("restoring from the trash")(e)),
            }
        }
        Ok(false)
    }

    /// Whether `key` exists, putting it back from the trash if a collection took it away.
    pub(super) async fn exists_or_restored(&self, key: &Key) -> Result<bool> {
        Ok(self.restore_if_missing(key).await? != Presence::Missing)
    }

    /// Puts `key` back from the trash if it is missing and a collection has it.
    async fn restore_if_missing(&self, key: &Key) -> Result<Presence> {
        match self.storage.head(key).await {
            Ok(_) => Ok(Presence::Present),
            Err(StorageError::NotFound { .. }) => Ok(if self.restore_from_trash(key).await? {
                Presence::Restored
            } else {
                Presence::Missing
            }),
            Err(e) => Err(storage("checking manifest references")(e)),
        }
    }

    /// Makes sure everything manifest `digest` of `repo` needs is in place — its revision
    /// link and content, its blobs' links and content, its children, recursively — putting
    /// back from the trash what a collection took away. Answers how many objects it put back.
    /// A collection runs this over the manifests pushed while it ran, after it swept: a push
    /// checked its references before the sweep took them, and wrote its tag after.
    pub async fn reinstate(&self, repo: &RepoName, digest: &Digest) -> Result<usize> {
        let mut restored = 0;
        let mut stack = vec![digest.clone()];
        let mut seen = HashSet::new();
        while let Some(manifest) = stack.pop() {
            if !seen.insert(manifest.clone()) {
                continue;
            }
            let content = layout::blob(&manifest);
            for key in [layout::manifest_link(repo, &manifest), content.clone()] {
                if self.restore_if_missing(&key).await? == Presence::Restored {
                    restored += 1;
                }
            }
            let max = self.settings.max_manifest_bytes;
            let bytes = match self.storage.get_bytes(&content, max).await {
                Ok(bytes) => bytes,
                Err(StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(storage("reading a manifest")(e)),
            };
            let Ok(doc) = ManifestDoc::parse(&bytes, None) else {
                continue;
            };
            for blob in &doc.blobs {
                for key in [layout::blob_link(repo, blob), layout::blob(blob)] {
                    if self.restore_if_missing(&key).await? == Presence::Restored {
                        restored += 1;
                    }
                }
            }
            stack.extend(doc.children);
        }
        Ok(restored)
    }
}
