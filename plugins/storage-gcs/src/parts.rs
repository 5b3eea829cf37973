//! Multipart uploads as part objects (see [`oci_storage_core::object_parts`]), joined with
//! GCS compose. Compose takes at most 32 sources, so more parts are composed level by level
//! through temporary objects in the upload's own namespace; only the last compose writes the
//! key, which keeps completion atomic.

use futures_util::{StreamExt, TryStreamExt, stream};
use gcloud_storage::http::Error as GcsError;
use gcloud_storage::http::objects::compose::{ComposeObjectRequest, ComposingTargets};
use gcloud_storage::http::objects::{Object, SourceObjects};
use oci_storage_core::object_parts::{
    check_upload_id, new_part_tag, part_name, recorded_part_name, upload_prefix,
};
use oci_storage_core::{ByteStream, Key, ObjectMeta, PartInfo, PutMode, StorageError};

use crate::upload::{self, Condition};
use crate::{GcsStorage, errors};

/// The most sources one compose request accepts.
const MAX_COMPOSE_SOURCES: usize = 32;
/// Requests in flight when composing one level or deleting part objects.
const CONCURRENCY: usize = 8;

pub(crate) async fn put_part(
    store: &GcsStorage,
    upload_id: &str,
    number: u32,
    body: ByteStream,
) -> Result<PartInfo, StorageError> {
    check_upload_id(upload_id)?;
    // A fresh tag per write: a concurrent or retried write of the same number never replaces
    // the part the registry recorded.
    let tag = new_part_tag();
    let name = format!("{}{}", store.prefix, part_name(upload_id, number, &tag));
    let object = upload::put(store, &name, body, Condition::Unconditional)
        .await
        .map_err(|e| e.into_storage_error(&name, &PutMode::Overwrite))?;
    Ok(PartInfo {
        number,
        size: u64::try_from(object.size).unwrap_or(0),
        tag,
    })
}

pub(crate) async fn complete(
    store: &GcsStorage,
    key: &Key,
    upload_id: &str,
    parts: &[PartInfo],
) -> Result<ObjectMeta, StorageError> {
    check_upload_id(upload_id)?;
    let sources = parts
        .iter()
        .map(|part| recorded_part_name(upload_id, part).map(|name| store.prefix.clone() + &name))
        .collect::<Result<Vec<_>, _>>()?;
    let dest = store.name(key);
    let object = match sources.as_slice() {
        [] => upload::put(
            store,
            &dest,
            Box::pin(stream::empty()),
            Condition::Unconditional,
        )
        .await
        .map_err(|e| e.into_storage_error(key.as_str(), &PutMode::Overwrite))?,
        // One part: a plain copy keeps the object non-composite (with an MD5).
        [only] => store
            .rewrite(only, &dest)
            .await
            .map_err(|e| missing_part_or(upload_id, key, e))?,
        _ => compose_all(store, upload_id, sources, &dest)
            .await
            .map_err(|e| missing_part_or(upload_id, key, e))?,
    };
    // The upload id is spent: its part objects (and temporary composites) can go.
    if let Err(e) = abort(store, upload_id).await {
        tracing::warn!(upload_id, error = %e, "could not delete the parts of a completed upload");
    }
    Ok(store.meta(key.clone(), &object))
}

pub(crate) async fn abort(store: &GcsStorage, upload_id: &str) -> Result<(), StorageError> {
    check_upload_id(upload_id)?;
    let prefix = format!("{}{}", store.prefix, upload_prefix(upload_id));
    let names = store
        .names_under(&prefix)
        .await
        .map_err(|e| errors::backend(format!("listing the parts of upload {upload_id}"), e))?;
    stream::iter(names)
        .map(|name| async move {
            store
                .delete_name(&name)
                .await
                .map_err(|e| errors::backend(format!("deleting part object {name}"), e))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Composes `sources` (more than one), in order, into `dest`.
async fn compose_all(
    store: &GcsStorage,
    upload_id: &str,
    mut sources: Vec<String>,
    dest: &str,
) -> Result<Object, GcsError> {
    let temp_prefix = format!("{}{}", store.prefix, upload_prefix(upload_id));
    while sources.len() > MAX_COMPOSE_SOURCES {
        let groups: Vec<Vec<String>> = sources
            .chunks(MAX_COMPOSE_SOURCES)
            .map(<[String]>::to_vec)
            .collect();
        sources = stream::iter(groups)
            .map(|group| {
                let temp_prefix = &temp_prefix;
                async move {
                    if let [single] = group.as_slice() {
                        return Ok::<_, GcsError>(single.clone());
                    }
                    // Cannot collide with a part name (those start with the part number).
                    let temp = format!("{temp_prefix}compose-{}", new_part_tag());
                    compose(store, &group, &temp).await?;
                    Ok(temp)
                }
            })
            .buffered(CONCURRENCY)
            .try_collect::<Vec<String>>()
            .await?;
    }
    compose(store, &sources, dest).await
}

async fn compose(store: &GcsStorage, sources: &[String], dest: &str) -> Result<Object, GcsError> {
    store
        .client
        .compose_object(&ComposeObjectRequest {
            bucket: store.bucket.clone(),
            destination_object: dest.to_owned(),
            composing_targets: ComposingTargets {
                destination: Some(Object {
                    content_type: Some("application/octet-stream".to_owned()),
                    ..Default::default()
                }),
                source_objects: sources
                    .iter()
                    .map(|name| SourceObjects {
                        name: name.clone(),
                        ..Default::default()
                    })
                    .collect(),
            },
            ..Default::default()
        })
        .await
}

/// A missing source means the upload (or a recorded part of it) is gone.
fn missing_part_or(upload_id: &str, key: &Key, e: GcsError) -> StorageError {
    if errors::status(&e) == Some(404) {
        StorageError::NotFound {
            key: format!("multipart upload {upload_id:?} (a part is missing)"),
        }
    } else {
        errors::backend(format!("completing the upload of {key}"), e)
    }
}
