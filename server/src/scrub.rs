//! Scrub (`oci-storage verify`, `scrub.schedule`): every stored blob and manifest is read back
//! and hashed, and every blob link and manifest revision is checked for its content. Damaged
//! content (bytes that no longer hash to their name) and links whose content is gone are
//! reported: on standard output, in the log, and in `/metrics`. It changes nothing: what to do
//! with damage (restore from a backup, push again) is an operator's decision.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_storage_core::{Digest, Key, StorageExt};
use serde::Serialize;

use crate::gc::inventory::Inventory;
use crate::progress::Progress;
use crate::registry::{Registry, layout};

/// Objects read at once.
const READS_AT_ONCE: usize = 4;
/// Findings listed by name, at most (all are counted).
const LISTED: usize = 1000;

/// What a scrub found.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Findings {
    /// Content objects read and hashed, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// Content whose bytes do not hash to its digest (or that could not be read whole).
    pub corrupt: Vec<String>,
    pub corrupt_count: u64,
    /// `repository@digest` of links (blob links, manifest revisions) whose content is gone,
    /// and keys (links, content) that tagged manifests need and that are gone.
    pub missing: Vec<String>,
    pub missing_count: u64,
    pub duration_ms: u64,
}

impl Findings {
    pub fn clean(&self) -> bool {
        self.corrupt_count == 0 && self.missing_count == 0
    }
}

/// Reads everything back.
pub async fn scrub(registry: &Registry, progress: &Progress) -> anyhow::Result<Findings> {
    let clock = Instant::now();
    progress.set_phase("inventory");
    let inventory = Inventory::read(registry).await?;
    let mut findings = Findings::default();
    let trashed = registry.trash_contents().await?;
    // Links whose content was not listed, looked at again one by one: a collection running
    // meanwhile moves links and content apart, and content in its trash is not lost.
    for (repo, links) in &inventory.repositories {
        let linked = links.blobs.iter().chain(links.manifests.iter());
        for (digest, link) in linked.filter(|(d, _)| !inventory.content.contains_key(*d)) {
            let content = layout::blob(digest);
            if !trashed.contains_key(content.as_str())
                && content_missing(registry, &link.key, &content).await?
            {
                findings.missing_count += 1;
                if findings.missing.len() < LISTED {
                    findings.missing.push(format!("{repo}@{digest}"));
                }
            }
        }
    }
    // What tags reach, followed down: manifests and blobs they need whose links or content
    // are gone (and not in a collection's trash).
    let plan = crate::gc::mark::plan(
        registry,
        &inventory,
        std::time::SystemTime::UNIX_EPOCH,
        &|_| None,
        progress,
    )
    .await?;
    // Content already reported through a link that lacks it is not reported twice.
    let reported: std::collections::HashSet<&str> = findings
        .missing
        .iter()
        .filter_map(|m| m.split_once('@').map(|(_, d)| d))
        .collect();
    let mut needed: Vec<String> = plan
        .wanted
        .iter()
        .filter(|key| !trashed.contains_key(key.as_str()))
        .filter(|key| {
            layout::digest_under(key.as_str(), layout::BLOBS_PREFIX)
                .is_none_or(|d| !reported.contains(d.to_string().as_str()))
        })
        .map(|key| key.as_str().to_owned())
        .collect();
    needed.sort();
    for key in needed {
        findings.missing_count += 1;
        if findings.missing.len() < LISTED {
            findings.missing.push(key);
        }
    }
    progress.set_phase("hash");
    progress.set_totals(
        inventory.content.len() as u64,
        inventory.content.values().map(|o| o.size).sum(),
    );
    let checked: Vec<(Digest, u64, bool)> = stream::iter(inventory.content.keys().cloned())
        .map(|digest| async move {
            let (sound, size) = hash_matches(registry, &digest).await?;
            progress.add_object();
            progress.add_bytes(size);
            Ok::<_, anyhow::Error>((digest, size, sound))
        })
        .buffer_unordered(READS_AT_ONCE)
        .try_collect()
        .await?;
    for (digest, size, sound) in checked {
        findings.objects += 1;
        findings.bytes += size;
        if !sound {
            findings.corrupt_count += 1;
            if findings.corrupt.len() < LISTED {
                findings.corrupt.push(digest.to_string());
            }
        }
    }
    findings.corrupt.sort();
    findings.duration_ms = clock.elapsed().as_millis() as u64;
    crate::metrics::get().scrubbed(&findings);
    if findings.clean() {
        tracing::info!(target: "scrub", objects = findings.objects, bytes = findings.bytes, duration_ms = findings.duration_ms, "scrub finished: all content is sound");
    } else {
        tracing::error!(target: "scrub", objects = findings.objects, corrupt = findings.corrupt_count, missing = findings.missing_count, first_corrupt = ?findings.corrupt.first(), first_missing = ?findings.missing.first(), "scrub found damage");
    }
    Ok(findings)
}

/// Whether the link `link` still exists and its `content` is not stored (looked at again: a
/// collection may have moved both since the listing).
async fn content_missing(registry: &Registry, link: &Key, content: &Key) -> anyhow::Result<bool> {
    let storage = registry.storage();
    Ok(storage.exists(link).await? && !storage.exists(content).await?)
}

/// Whether stored `digest` hashes to its name; answers its size. A read that fails midway is
/// tried once more (stores reset connections) before it counts as damage; content deleted
/// since the listing (a collection, a delete) has nothing to check.
async fn hash_matches(registry: &Registry, digest: &Digest) -> anyhow::Result<(bool, u64)> {
    match hash_once(registry, digest).await? {
        Some(Hashed::Broken) => Ok(hash_once(registry, digest)
            .await?
            .map_or((true, 0), |h| h.outcome())),
        Some(hashed) => Ok(hashed.outcome()),
        None => Ok((true, 0)),
    }
}

enum Hashed {
    Sound(u64),
    Damaged(u64),
    /// The read failed midway.
    Broken,
}

impl Hashed {
    fn outcome(self) -> (bool, u64) {
        match self {
            Self::Sound(size) => (true, size),
            Self::Damaged(size) => (false, size),
            Self::Broken => (false, 0),
        }
    }
}

/// One read and hash; `None` when the content is gone.
async fn hash_once(registry: &Registry, digest: &Digest) -> anyhow::Result<Option<Hashed>> {
    let (size, mut body) = match registry.read_content(digest).await {
        Ok(read) => read,
        Err(_) if registry.content_size(digest).await.ok() == Some(None) => return Ok(None),
        Err(e) => anyhow::bail!("reading {}: {}", layout::blob(digest), e.message),
    };
    let mut hasher = digest.algorithm().hasher();
    let mut read = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                read += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Err(_) => return Ok(Some(Hashed::Broken)),
        }
    }
    Ok(Some(if read == size && hasher.finish() == *digest {
        Hashed::Sound(size)
    } else {
        Hashed::Damaged(size)
    }))
}

/// Runs `scrub.schedule`'s scrubs for as long as the process lives, each slot on the one
/// replica that claims it.
pub fn spawn_scheduled(registry: Registry, schedule: oci_storage_config::Schedule) {
    tokio::spawn(async move {
        let key = layout::scrub_schedule();
        let holder = crate::lease::holder_name();
        loop {
            let slot = crate::schedule::sleep_until_next(&schedule).await;
            match crate::schedule::claim(registry.storage().as_ref(), &key, slot, &holder).await {
                Ok(true) => {
                    if let Err(e) = scrub(&registry, &Arc::default()).await {
                        tracing::warn!(target: "scrub", error = %format!("{e:#}"), "scheduled scrub failed");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(target: "scrub", %slot, error = %e, "could not claim a scheduled scrub; skipping it")
                }
            }
        }
    });
}

/// `oci-storage verify [--json]`: a scrub now; exit 1 when anything is damaged.
pub async fn command(loaded: &oci_storage_config::Loaded, json: bool) -> anyhow::Result<()> {
    crate::logging::init_to(&loaded.config.logging, crate::logging::Output::Stderr);
    let registry = crate::build_registry_only(&crate::builtin_plugins(), loaded).await?;
    let progress = Arc::new(Progress::default());
    let line = crate::progress::line::spawn(progress.clone());
    let findings = scrub(&registry, &progress).await;
    drop(line);
    let findings = findings?;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        println!(
            "{} objects ({}) read back: {} corrupt, {} links without content",
            findings.objects,
            crate::human::bytes(findings.bytes),
            findings.corrupt_count,
            findings.missing_count
        );
        for digest in &findings.corrupt {
            println!("corrupt: {digest}");
        }
        for link in &findings.missing {
            println!("missing: {link}");
        }
    }
    anyhow::ensure!(
        findings.clean(),
        "{} corrupt objects and {} links without content",
        findings.corrupt_count,
        findings.missing_count
    );
    Ok(())
}
