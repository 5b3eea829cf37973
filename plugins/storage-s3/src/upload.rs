//! Streaming writes of unknown length. S3 needs each request's length up front, so the body is
//! cut into parts: a body that fits in one part is a single conditional PutObject; a longer one
//! becomes a native multipart upload whose completion carries the condition. One part is
//! uploaded while the next is read, so memory stays at about two parts whatever the size.

use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use oci_storage_core::chunks::{self, Chunker};
use oci_storage_core::{ByteStream, StorageError};

use crate::{S3Storage, errors};

/// The condition a write carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Condition {
    pub if_none_match: Option<String>,
    pub if_match: Option<String>,
}

/// What a completed write answers.
#[derive(Debug)]
pub(crate) struct Written {
    pub size: u64,
    pub etag: Option<String>,
}

impl S3Storage {
    /// Writes `body` to the object `name` (already prefixed), atomically.
    pub(crate) async fn write_stream(
        &self,
        name: &str,
        body: ByteStream,
        condition: Condition,
    ) -> Result<Written, StorageError> {
        let mut chunks = Chunker::new(body, self.part_size);
        let first = chunks
            .next_chunk()
            .await
            .map_err(StorageError::Input)?
            .unwrap_or_default();
        if first.len() < self.part_size {
            return self.write_single(name, first, &condition).await;
        }
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(name)
            .send()
            .await
            .map_err(|e| errors::map(e, "starting an upload of", name))?
            .upload_id
            .ok_or_else(|| backend("no upload id in CreateMultipartUpload answer", name))?;
        let result = self
            .write_parts(name, &upload_id, first, &mut chunks, &condition)
            .await;
        if result.is_err() {
            // Nothing may stay behind: the parts are invisible but cost space.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(name)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn write_single(
        &self,
        name: &str,
        bytes: Bytes,
        condition: &Condition,
    ) -> Result<Written, StorageError> {
        let size = bytes.len() as u64;
        let sent = bytes.clone();
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(name)
            .content_length(size as i64)
            .set_if_none_match(condition.if_none_match.clone())
            .set_if_match(condition.if_match.clone())
            .body(S3Body::from(bytes))
            .send()
            .await
            .map_err(|e| errors::map(e, "writing", name))?;
        chunks::recycle(sent);
        Ok(Written {
            size,
            etag: out.e_tag,
        })
    }

    async fn write_parts(
        &self,
        name: &str,
        upload_id: &str,
        first: Bytes,
        chunks: &mut Chunker,
        condition: &Condition,
    ) -> Result<Written, StorageError> {
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut current = Some(first);
        while let Some(chunk) = current.take() {
            let number = parts.len() as i32 + 1;
            chunks.set_size(part_size_for(self.part_size, parts.len() + 1));
            size += chunk.len() as u64;
            let (uploaded, next) = tokio::join!(
                self.upload_part(name, upload_id, number, chunk),
                chunks.next_chunk()
            );
            parts.push(uploaded?);
            current = next.map_err(StorageError::Input)?;
        }
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(name)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_none_match(condition.if_none_match.clone())
            .set_if_match(condition.if_match.clone())
            .send()
            .await
            .map_err(|e| errors::map(e, "completing an upload of", name))?;
        Ok(Written {
            size,
            etag: out.e_tag,
        })
    }

    /// Uploads one native part from memory.
    pub(crate) async fn upload_part(
        &self,
        name: &str,
        upload_id: &str,
        number: i32,
        bytes: Bytes,
    ) -> Result<CompletedPart, StorageError> {
        let sent = bytes.clone();
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(name)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(bytes.len() as i64)
            .body(S3Body::from(bytes))
            .send()
            .await
            .map_err(|e| errors::map(e, "uploading a part of", name))?;
        chunks::recycle(sent);
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag)
            .build())
    }
}

/// S3 joins at most 10,000 parts: the part size doubles every 1,000 parts, so an object of
/// unknown length can reach S3's 5 TiB limit (memory stays two parts, which only grow for
/// objects over 8 GiB at the default size).
pub(crate) fn part_size_for(base: usize, parts_done: usize) -> usize {
    const MAX_PART: usize = 5 * 1024 * 1024 * 1024;
    let doublings = (parts_done / 1000).min(20) as u32;
    base.saturating_mul(1 << doublings).min(MAX_PART)
}

pub(crate) fn backend(message: &str, name: &str) -> StorageError {
    StorageError::Backend {
        message: format!("s3 {name}: {message}"),
        source: None,
    }
}
