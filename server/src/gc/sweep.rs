//! Sweep: moves what the plan takes away into this run's trash — links first, content last,
//! each looked at again just before (something written since the mark, such as a manifest
//! pushed again, is left alone); then puts back what pushes made during the run rely on
//! (`rescue`), and empties the trash of runs older than `gc.delay`.

use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_storage_core::{Digest, Key, PutMode, StorageError, StorageExt, Within};

use super::inventory::Object;
use super::mark::Plan;
use super::run_id;
use crate::progress::Progress;
use crate::records;
use crate::registry::{ManifestLink, Registry, RegistryError, RepoName, layout};

/// Objects moved or deleted at once.
const AT_ONCE: usize = 16;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Swept {
    pub manifests: u64,
    pub referrers: u64,
    pub blob_links: u64,
    pub content_objects: u64,
    pub content_bytes: u64,
    /// Planned, but written again since the mark: kept.
    pub rewritten: u64,
}

/// What emptying the trash freed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Emptied {
    pub objects: u64,
    pub bytes: u64,
}

/// Moves everything in `plan` into run `run`'s trash.
pub async fn sweep(
    registry: &Registry,
    run: &str,
    plan: Plan,
    cutoff: SystemTime,
    progress: &Progress,
) -> Result<Swept, RegistryError> {
    let mut swept = Swept::default();
    progress.set_phase("sweep");
    // The trash's age is its last move's: a marker rewritten while objects move into it.
    let marker = layout::trashed(run, &trash_marker());
    let write_marker = |state: &'static str| {
        let marker = &marker;
        async move {
            registry
                .storage()
                .put_bytes(
                    marker,
                    bytes::Bytes::from_static(state.as_bytes()),
                    PutMode::Overwrite,
                )
                .await
                .map_err(crate::registry::error::storage("marking the trash"))
        }
    };
    write_marker(MOVING).await?;
    let heartbeat = async {
        loop {
            tokio::time::sleep(MARKER_EVERY).await;
            if let Err(e) = write_marker(MOVING).await {
                tracing::warn!(target: "gc", error = %e.message, "could not mark the trash's age");
            }
        }
    };
    let moved = async {
        move_plan(registry, run, plan, cutoff, progress, &mut swept).await?;
        write_marker(DONE).await
    };
    tokio::select! {
        done = moved => drop(done?),
        () = heartbeat => unreachable!("the heartbeat never ends"),
    }
    Ok(swept)
}

/// How often the trash marker is rewritten while objects move: a trash whose run stopped
/// midway (its marker still says `moving`) is emptied only once the marker is older than
/// `gc.delay` plus this; one whose moves ended (`done`), once it is older than `gc.delay`.
const MARKER_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
const MOVING: &str = "moving";
const DONE: &str = "done";

/// `trash/<run>/!moved`: no registry key starts with `!`.
fn trash_marker() -> Key {
    Key::new("!moved").expect("a valid key")
}

async fn move_plan(
    registry: &Registry,
    run: &str,
    plan: Plan,
    cutoff: SystemTime,
    progress: &Progress,
    swept: &mut Swept,
) -> Result<(), RegistryError> {
    progress.set_totals(
        (plan.manifests.len() + plan.referrers.len() + plan.blob_links.len() + plan.content.len())
            as u64,
        plan.content_bytes(),
    );
    let manifests = stream::iter(plan.manifests)
        .map(|(repo, digest, revision)| async move {
            if written_since(registry, &revision.key, cutoff).await? {
                return Ok(Outcome::Rewritten);
            }
            let moved = registry.trash_manifest_link(run, &repo, &digest).await?;
            Ok(Outcome::of(moved))
        })
        .buffer_unordered(AT_ONCE);
    tally(
        manifests,
        progress,
        &mut swept.manifests,
        &mut swept.rewritten,
        None,
    )
    .await?;
    let referrers = move_all(registry, run, plan.referrers, cutoff);
    tally(
        referrers,
        progress,
        &mut swept.referrers,
        &mut swept.rewritten,
        None,
    )
    .await?;
    let links = move_all(registry, run, plan.blob_links, cutoff);
    tally(
        links,
        progress,
        &mut swept.blob_links,
        &mut swept.rewritten,
        None,
    )
    .await?;
    let content = move_all(
        registry,
        run,
        plan.content.into_iter().map(|(_, o)| o).collect(),
        cutoff,
    );
    let mut bytes = 0;
    tally(
        content,
        progress,
        &mut swept.content_objects,
        &mut swept.rewritten,
        Some(&mut bytes),
    )
    .await?;
    swept.content_bytes = bytes;
    Ok(())
}

enum Outcome {
    Moved(u64),
    Gone,
    Rewritten,
}

impl Outcome {
    fn of(moved: bool) -> Self {
        if moved { Self::Moved(0) } else { Self::Gone }
    }
}

fn move_all<'a>(
    registry: &'a Registry,
    run: &'a str,
    objects: Vec<Object>,
    cutoff: SystemTime,
) -> impl futures_util::Stream<Item = Result<Outcome, RegistryError>> + 'a {
    stream::iter(objects)
        .map(move |object: Object| async move {
            if written_since(registry, &object.key, cutoff).await? {
                return Ok(Outcome::Rewritten);
            }
            Ok(match registry.move_to_trash(run, &object.key).await? {
                true => Outcome::Moved(object.size),
                false => Outcome::Gone,
            })
        })
        .buffer_unordered(AT_ONCE)
}

async fn tally(
    outcomes: impl futures_util::Stream<Item = Result<Outcome, RegistryError>>,
    progress: &Progress,
    moved: &mut u64,
    rewritten: &mut u64,
    mut bytes: Option<&mut u64>,
) -> Result<(), RegistryError> {
    let mut outcomes = std::pin::pin!(outcomes);
    while let Some(outcome) = outcomes.try_next().await? {
        progress.add_object();
        match outcome {
            Outcome::Moved(size) => {
                *moved += 1;
                progress.add_bytes(size);
                if let Some(b) = bytes.as_deref_mut() {
                    *b += size;
                }
            }
            Outcome::Rewritten => *rewritten += 1,
            Outcome::Gone => {}
        }
    }
    Ok(())
}

/// Whether `key` was written after `cutoff` (so after the mark looked at it).
async fn written_since(
    registry: &Registry,
    key: &Key,
    cutoff: SystemTime,
) -> Result<bool, RegistryError> {
    match registry.storage().head(key).await {
        Ok(meta) => Ok(meta.last_modified.is_some_and(|m| m >= cutoff)),
        Err(StorageError::NotFound { .. }) => Ok(false),
        Err(e) => Err(crate::registry::error::storage(
            "checking before collecting",
        )(e)),
    }
}

/// Puts back from the trash what kept manifests need and lack (`Plan::wanted`), from the
/// newest run that has it; one listing of the trash. Answers how many were put back (a dry
/// run: how many would be).
pub async fn heal(
    registry: &Registry,
    wanted: &[Key],
    dry_run: bool,
) -> Result<u64, RegistryError> {
    if wanted.is_empty() {
        return Ok(0);
    }
    let trashed = registry.trash_contents().await?;
    let mut healed = 0;
    for key in wanted {
        let Some(run) = trashed.get(key.as_str()) else {
            continue;
        };
        if !dry_run {
            registry
                .storage()
                .copy(&layout::trashed(run, key), key)
                .await
                .map_err(crate::registry::error::storage("restoring from the trash"))?;
            tracing::info!(target: "gc", key = %key, run = %run, "put back from the trash: a kept manifest needs it");
        }
        healed += 1;
    }
    Ok(healed)
}

/// After a sweep: every manifest revision or tag written since `since` (pushes that went on
/// while the run looked and swept) gets back from the trash whatever it needs. Answers how
/// many objects were put back.
pub async fn rescue(
    registry: &Registry,
    since: SystemTime,
    progress: &Progress,
) -> Result<u64, RegistryError> {
    progress.set_phase("recheck");
    let links = registry
        .storage()
        .list_all("repositories/")
        .await
        .map_err(crate::registry::error::storage("listing repositories"))?;
    let mut recent: Vec<(RepoName, Digest)> = Vec::new();
    for meta in links {
        if meta.last_modified.is_some_and(|m| m < since) {
            continue;
        }
        let key = meta.key.as_str();
        let Some((repo, rest)) = key
            .strip_prefix("repositories/")
            .and_then(|path| path.split_once("/_"))
        else {
            continue;
        };
        let Some(repo) = RepoName::parse(repo) else {
            continue;
        };
        let digest = if let Some(revision) = rest.strip_prefix("manifests/") {
            revision.replacen('/', ":", 1).parse::<Digest>().ok()
        } else if rest.starts_with("tags/") {
            records::MANIFEST_LINK
                .read_listed::<ManifestLink>(registry.storage().as_ref(), &meta.key)
                .await
                .map_err(crate::registry::error::storage("reading a tag"))?
                .map(|link| link.digest)
        } else {
            None
        };
        if let Some(digest) = digest {
            recent.push((repo, digest));
        }
    }
    recent.sort_unstable_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    recent.dedup();
    progress.set_totals(recent.len() as u64, 0);
    let restored: Vec<usize> = stream::iter(recent)
        .map(|(repo, digest)| async move {
            let n = registry.reinstate(&repo, &digest).await?;
            progress.add_object();
            Ok::<_, RegistryError>(n)
        })
        .buffer_unordered(AT_ONCE)
        .try_collect()
        .await?;
    Ok(restored.iter().sum::<usize>() as u64)
}

/// Deletes the trash of every run that began before `cutoff`.
pub async fn empty_trash(
    registry: &Registry,
    cutoff: SystemTime,
    progress: &Progress,
) -> Result<Emptied, RegistryError> {
    progress.set_phase("empty trash");
    let mut emptied = Emptied::default();
    for run in registry.trash_runs().await? {
        // Its last move (or, without a marker, its start) must be older than gc.delay.
        let moved_last = match registry
            .storage()
            .get_within(&layout::trashed(&run, &trash_marker()), 64)
            .await
        {
            Ok(Within::Read { meta, bytes }) if bytes.as_ref() == DONE.as_bytes() => {
                meta.last_modified
            }
            Ok(Within::Read { meta, .. }) => meta.last_modified.map(|t| t + MARKER_EVERY),
            Ok(Within::TooLarge) => None,
            Err(StorageError::NotFound { .. }) => run_id::started(&run),
            Err(e) => return Err(crate::registry::error::storage("reading the trash")(e)),
        };
        if moved_last.is_none_or(|t| t >= cutoff) {
            continue;
        }
        let objects = registry
            .storage()
            .list_all(&layout::trash_of(&run))
            .await
            .map_err(crate::registry::error::storage("listing the trash"))?;
        progress.set_totals(objects.len() as u64, objects.iter().map(|o| o.size).sum());
        let deleted: Vec<u64> = stream::iter(objects)
            .map(|object| async move {
                registry
                    .storage()
                    .delete(&object.key)
                    .await
                    .map_err(crate::registry::error::storage("emptying the trash"))?;
                progress.add_object();
                progress.add_bytes(object.size);
                Ok::<_, RegistryError>(object.size)
            })
            .buffer_unordered(AT_ONCE)
            .try_collect()
            .await?;
        emptied.objects += deleted.len() as u64;
        emptied.bytes += deleted.iter().sum::<u64>();
    }
    Ok(emptied)
}
