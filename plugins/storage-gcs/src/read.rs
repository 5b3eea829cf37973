//! Streaming reads. The metadata is read first (the media download does not return it), then
//! the bytes of that very generation, so size and body always belong to the same object.

use std::ops::Range;

use futures_util::TryStreamExt;
use gcloud_storage::http::objects::download::Range as ByteRange;
use gcloud_storage::http::objects::get::GetObjectRequest;
use oci_storage_core::{GetResult, Key, StorageError};

use crate::GcsStorage;
use crate::errors;

/// Attempts when the object is replaced between the metadata and the download.
const ATTEMPTS: usize = 3;

pub(crate) async fn get(
    store: &GcsStorage,
    key: &Key,
    range: Option<Range<u64>>,
) -> Result<GetResult, StorageError> {
    let name = store.name(key);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let object = store
            .stat(&name)
            .await
            .map_err(|e| errors::read_error(key.as_str(), "get", e))?;
        let meta = store.meta(key.clone(), &object);
        let served = match &range {
            None => 0..meta.size,
            Some(r) => {
                let start = r.start.min(meta.size);
                start..r.end.clamp(start, meta.size)
            }
        };
        if served.is_empty() {
            // GCS answers 416 to a range starting at the end: nothing to ask for.
            return Ok(GetResult::new(
                meta,
                served,
                Box::pin(futures_util::stream::empty()),
            ));
        }
        let byte_range = if served.start == 0 && served.end == meta.size {
            ByteRange::default()
        } else {
            ByteRange(Some(served.start), Some(served.end - 1))
        };
        let request = GetObjectRequest {
            bucket: store.bucket.clone(),
            object: name.clone(),
            if_generation_match: Some(object.generation),
            ..Default::default()
        };
        match store
            .client
            .download_streamed_object(&request, &byte_range)
            .await
        {
            Ok(stream) => {
                return Ok(GetResult::new(
                    meta,
                    served,
                    Box::pin(stream.map_err(std::io::Error::other)),
                ));
            }
            // Replaced (412) or shrunk (416) since the metadata was read: read both again.
            Err(e) if matches!(errors::status(&e), Some(412 | 416)) && attempt < ATTEMPTS => {}
            Err(e) => return Err(errors::read_error(key.as_str(), "get", e)),
        }
    }
}
