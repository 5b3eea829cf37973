//! Moving objects between the registry and a backup target, always verified by digest as they
//! stream, and reading the target's documents back (checked before they are parsed).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use oci_storage_core::digest::{content_mismatch, verified_stream};
use oci_storage_core::{
    BackupError, BackupObject, BackupTarget, ByteStream, Digest, Key, WriteMode,
};
use serde::de::DeserializeOwned;

use super::format::{self, MAX_DOCUMENT_BYTES};
use crate::progress::Progress;
use crate::registry::Registry;

/// Every object under `prefix` in the target.
pub async fn list_objects(
    target: &dyn BackupTarget,
    prefix: &str,
) -> Result<Vec<BackupObject>, BackupError> {
    let mut out = Vec::new();
    let mut start_after: Option<String> = None;
    loop {
        let page = target.list(prefix, start_after.as_deref()).await?;
        out.extend(page.objects);
        match page.next {
            Some(next) => start_after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Every object path under `prefix` in the target.
pub async fn list_paths(
    target: &dyn BackupTarget,
    prefix: &str,
) -> Result<Vec<String>, BackupError> {
    Ok(list_objects(target, prefix)
        .await?
        .into_iter()
        .map(|o| o.path)
        .collect())
}

/// The digest and size of each object under `prefix` (`blobs/` or `meta/`).
pub async fn list_sizes(
    target: &dyn BackupTarget,
    prefix: &str,
) -> Result<BTreeMap<Digest, u64>, BackupError> {
    Ok(list_objects(target, prefix)
        .await?
        .into_iter()
        .filter_map(|o| format::digest_of(&o.path).map(|d| (d, o.size)))
        .collect())
}

/// `body` counted into `progress` as it flows.
fn counted(body: ByteStream, progress: &std::sync::Arc<Progress>) -> ByteStream {
    let progress = progress.clone();
    body.inspect_ok(move |chunk| progress.add_bytes(chunk.len() as u64))
        .boxed()
}

/// Waits before the second, third and fourth try of an object: a store that is away for a few
/// seconds (a restart, a network blip) does not fail a long job.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(10),
];

/// Runs `attempt` until it succeeds or has failed four times; failures that another try
/// cannot fix (`permanent`) end at once.
pub(super) async fn with_retries<T, F, Fut>(
    what: &str,
    permanent: fn(&anyhow::Error) -> bool,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut delays = RETRY_DELAYS.iter();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if permanent(&e) => return Err(e),
            Err(e) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(target: "backup", error = %format!("{e:#}"), "{what} failed; trying again in {} s", delay.as_secs());
                    tokio::time::sleep(*delay).await;
                }
                None => return Err(e),
            },
        }
    }
}

/// Content that does not hash to its name: reading it again gives the same bytes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Damaged(String);

fn is_damaged(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Damaged>().is_some()
}

/// Copies registry content into the target's `blobs/`, checking its digest on the way: stored
/// content that no longer hashes to its name fails the job instead of entering every later
/// snapshot. Other failures are tried again.
pub async fn upload_content(
    registry: &Registry,
    target: &dyn BackupTarget,
    digest: &Digest,
    mode: WriteMode,
    progress: &std::sync::Arc<Progress>,
) -> anyhow::Result<()> {
    with_retries(&format!("uploading {digest}"), is_damaged, || {
        upload_once(registry, target, digest, mode, progress)
    })
    .await
}

async fn upload_once(
    registry: &Registry,
    target: &dyn BackupTarget,
    digest: &Digest,
    mode: WriteMode,
    progress: &std::sync::Arc<Progress>,
) -> anyhow::Result<()> {
    let (size, body) = registry
        .read_content(digest)
        .await
        .map_err(|e| anyhow::anyhow!("reading {digest} from the registry: {}", e.message))?;
    let body = counted(verified_stream(body, digest, size), progress);
    match target
        .put(&format::blob(digest), body, size, mode)
        .await
    {
        Ok(()) | Err(BackupError::AlreadyExists(_)) => Ok(()),
        Err(BackupError::Input(e)) if content_mismatch(&e).is_some() => Err(Damaged(format!(
            "the registry's copy of {digest} is damaged ({e}); the backup stops here so that it is not saved as good"
        ))
        .into()),
        Err(e) => Err(anyhow::anyhow!(
            "writing {digest} to {}: {e}",
            target.describe()
        )),
    }
}

/// Copies content from the target into the registry, checking its digest on the way (a
/// failure, including a mismatch that a cut connection can cause, is tried again).
pub async fn download_content(
    registry: &Registry,
    target: &dyn BackupTarget,
    digest: &Digest,
    progress: &std::sync::Arc<Progress>,
) -> anyhow::Result<()> {
    with_retries(
        &format!("restoring {digest}"),
        |_| false,
        || download_once(registry, target, digest, progress),
    )
    .await
}

async fn download_once(
    registry: &Registry,
    target: &dyn BackupTarget,
    digest: &Digest,
    progress: &std::sync::Arc<Progress>,
) -> anyhow::Result<()> {
    let (object, body) = target
        .get(&format::blob(digest))
        .await
        .map_err(|e| anyhow::anyhow!("reading {digest} from {}: {e}", target.describe()))?;
    registry
        .import_content(digest, object.size, counted(body, progress))
        .await
        .map_err(|e| anyhow::anyhow!("restoring {digest}: {}", e.message))
}

/// Why an object of a snapshot could not be read back.
#[derive(Debug)]
pub enum Damage {
    Missing,
    Damaged(String),
    /// The target could not be read: not a finding about the snapshot.
    Target(BackupError),
}

/// Reads an object of the target through and checks that it hashes to its name.
pub async fn check_content(
    target: &dyn BackupTarget,
    digest: &Digest,
    size: u64,
    progress: &std::sync::Arc<Progress>,
) -> Result<(), Damage> {
    let (_, body) = match target.get(&format::blob(digest)).await {
        Ok(got) => got,
        Err(BackupError::NotFound(_)) => return Err(Damage::Missing),
        Err(e) => return Err(Damage::Target(e)),
    };
    let mut body = counted(verified_stream(body, digest, size), progress);
    while let Some(chunk) = body.next().await {
        if let Err(e) = chunk {
            return Err(match content_mismatch(&e) {
                Some(mismatch) => Damage::Damaged(mismatch.to_string()),
                None => Damage::Target(BackupError::Input(e)),
            });
        }
    }
    Ok(())
}

/// Reads a whole (small) object.
pub async fn read_small(
    target: &dyn BackupTarget,
    path: &Key,
    max: u64,
) -> Result<Bytes, BackupError> {
    let (object, mut body) = target.get(path).await?;
    if object.size > max {
        return Err(BackupError::Target {
            message: format!("{path} is {} bytes, over the limit of {max}", object.size),
            source: None,
        });
    }
    let mut buf = BytesMut::with_capacity(object.size as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BackupError::Input)?;
        if (buf.len() + chunk.len()) as u64 > max {
            return Err(BackupError::Target {
                message: format!("{path} is over the limit of {max} bytes"),
                source: None,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads a document under `meta/`, checked against its digest before it is parsed.
pub async fn read_document<T: DeserializeOwned>(
    target: &dyn BackupTarget,
    digest: &Digest,
) -> anyhow::Result<T> {
    let bytes = read_small(target, &format::meta(digest), MAX_DOCUMENT_BYTES)
        .await
        .map_err(|e| anyhow::anyhow!("reading document {digest}: {e}"))?;
    let actual = digest.algorithm().digest(&bytes);
    anyhow::ensure!(
        actual == *digest,
        "document {digest} in {} is damaged: it hashes to {actual}",
        target.describe()
    );
    serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("document {digest} cannot be read: {e}"))
}

/// Writes a document under `meta/` unless it is there already; answers its size when it
/// was written.
pub async fn put_document(
    target: &dyn BackupTarget,
    bytes: Bytes,
    digest: &Digest,
) -> anyhow::Result<Option<u64>> {
    with_retries(
        "writing a document",
        |_| false,
        || put_document_once(target, bytes.clone(), digest),
    )
    .await
}

async fn put_document_once(
    target: &dyn BackupTarget,
    bytes: Bytes,
    digest: &Digest,
) -> anyhow::Result<Option<u64>> {
    let size = bytes.len() as u64;
    match target
        .put(
            &format::meta(digest),
            oci_storage_core::storage::bytes_stream(bytes),
            size,
            WriteMode::Create,
        )
        .await
    {
        Ok(()) => Ok(Some(size)),
        Err(BackupError::AlreadyExists(_)) => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "writing a document to {}: {e}",
            target.describe()
        )),
    }
}
