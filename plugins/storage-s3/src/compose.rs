//! Server-side joining of objects into one: copies and multipart completion.
//!
//! S3 joins only native parts of at least 5 MiB (but the last), while the registry's chunks
//! can be any size. So a source that is large enough, at a point where nothing is pending, is
//! copied server-side (UploadPartCopy); smaller sources are read and re-uploaded through one
//! bounded buffer. Memory stays under two parts whatever the sizes.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::BytesMut;
use futures_util::StreamExt;
use oci_storage_core::StorageError;

use crate::upload::{Written, backend};
use crate::{S3Storage, errors};

/// The smallest native part S3 accepts, except for the last one.
const MIN_PART: u64 = 5 * 1024 * 1024;
/// The largest object (or part) a single server-side copy may produce.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// Pieces a large copied source is cut into (equal sizes, so none is under MIN_PART).
const COPY_PIECE: u64 = 4 * 1024 * 1024 * 1024;

/// One object to join, by prefixed name, with its size.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub name: String,
    pub size: u64,
    /// When known, copies are pinned to this version: a source replaced meanwhile fails the
    /// copy instead of mixing two versions.
    pub etag: Option<String>,
}

/// How a large source is cut for UploadPartCopy: equal pieces of at most `COPY_PIECE`, so none
/// is under S3's 5 MiB minimum.
pub(crate) fn copy_pieces(size: u64) -> Vec<std::ops::Range<u64>> {
    let count = size.div_ceil(COPY_PIECE).max(1);
    let piece = size.div_ceil(count);
    (0..count)
        .map(|i| (i * piece).min(size)..((i + 1) * piece).min(size))
        .filter(|r| !r.is_empty())
        .collect()
}

impl S3Storage {
    /// Makes `target` the concatenation of `sources`, atomically.
    pub(crate) async fn compose(
        &self,
        target: &str,
        sources: &[Source],
    ) -> Result<Written, StorageError> {
        if let [only] = sources
            && only.size <= MAX_COPY
        {
            return self.copy_whole(only, target).await;
        }
        if sources.iter().all(|s| s.size == 0) {
            return self
                .write_stream(
                    target,
                    oci_storage_core::storage::bytes_stream(bytes::Bytes::new()),
                    Default::default(),
                )
                .await;
        }
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(target)
            .send()
            .await
            .map_err(|e| errors::map(e, "starting an upload of", target))?
            .upload_id
            .ok_or_else(|| backend("no upload id in CreateMultipartUpload answer", target))?;
        let result = self.compose_parts(target, &upload_id, sources).await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(target)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn compose_parts(
        &self,
        target: &str,
        upload_id: &str,
        sources: &[Source],
    ) -> Result<Written, StorageError> {
        let mut parts: Vec<CompletedPart> = Vec::new();
        let mut pending = BytesMut::new();
        let mut size = 0u64;
        for source in sources {
            size += source.size;
            if pending.is_empty() && source.size >= MIN_PART {
                for piece in copy_pieces(source.size) {
                    let number = parts.len() as i32 + 1;
                    parts.push(
                        self.copy_part(target, upload_id, number, source, piece)
                            .await?,
                    );
                }
                continue;
            }
            let (head, mut body) = self.get_stream(&source.name, None).await?;
            if head.size != source.size {
                return Err(backend(
                    "part changed size since it was written",
                    &source.name,
                ));
            }
            while let Some(bytes) = body.next().await {
                let bytes = bytes.map_err(|e| StorageError::backend("s3 reading a part", e))?;
                pending.extend_from_slice(&bytes);
                while pending.len() >= self.part_size {
                    let number = parts.len() as i32 + 1;
                    let chunk = pending.split_to(self.part_size).freeze();
                    parts.push(self.upload_part(target, upload_id, number, chunk).await?);
                }
            }
        }
        if !pending.is_empty() {
            let number = parts.len() as i32 + 1;
            parts.push(
                self.upload_part(target, upload_id, number, pending.freeze())
                    .await?,
            );
        }
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(target)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| errors::map(e, "completing an upload of", target))?;
        Ok(Written {
            size,
            etag: out.e_tag,
        })
    }

    async fn copy_part(
        &self,
        target: &str,
        upload_id: &str,
        number: i32,
        source: &Source,
        range: std::ops::Range<u64>,
    ) -> Result<CompletedPart, StorageError> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(target)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(self.copy_source(&source.name))
            .set_copy_source_if_match(source.etag.clone())
            .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| errors::map(e, "copying a part into", target))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.copy_part_result.and_then(|r| r.e_tag))
            .build())
    }

    /// One CopyObject (sources up to 5 GiB).
    async fn copy_whole(&self, from: &Source, to: &str) -> Result<Written, StorageError> {
        let out = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(self.copy_source(&from.name))
            .set_copy_source_if_match(from.etag.clone())
            .send()
            .await
            .map_err(|e| errors::map(e, "copying", &from.name))?;
        Ok(Written {
            size: from.size,
            etag: out.copy_object_result.and_then(|r| r.e_tag),
        })
    }

    /// `bucket/name`, percent-encoded as the copy-source header requires.
    fn copy_source(&self, name: &str) -> String {
        let mut out = String::with_capacity(self.bucket.len() + name.len() + 8);
        for b in format!("{}/{name}", self.bucket).bytes() {
            if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}
