//! Amazon S3 and S3-compatible stores (SeaweedFS, MinIO, Ceph, Garage…) as registry storage.
//!
//! Keys are object names under an optional prefix. Conditional writes use `If-None-Match: *`
//! and `If-Match: <etag>` (on PutObject and CompleteMultipartUpload), so several replicas can
//! share one bucket. Multipart uploads of the `Storage` API are part objects joined at the end
//! (see `oci_storage_core::object_parts` and `compose`).

mod backup;
mod compose;
mod config;
mod errors;
mod listing;
mod upload;

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use futures_util::stream;
use oci_storage_core::object_parts::{self, check_upload_id};
use oci_storage_core::{
    ByteStream, GetResult, Key, ListOptions, ListPage, ObjectMeta, PartInfo, PluginContext,
    PluginError, PutMode, Storage, StorageError,
};

pub use config::S3Config;
use upload::Condition;

pub use backup::backup_factory;

/// The plugin factory, registered as storage type `s3`.
pub async fn factory(
    ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn Storage>, PluginError> {
    let config: S3Config = PluginError::parse_config(&ctx.section, config)?;
    Ok(Arc::new(S3Storage::connect(config).await?))
}

/// One bucket (and prefix) of an S3-compatible store.
#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    /// Size of the parts streamed writes are cut into.
    part_size: usize,
    /// Lifetime of presigned download URLs, when downloads are redirected.
    redirect_expiry: Option<std::time::Duration>,
}

/// By hand: the SDK client's Debug shows its configuration, access key id included.
impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Builds the client from explicit settings (no network traffic yet).
    pub async fn connect(config: S3Config) -> Result<Self, PluginError> {
        let part_size = config.part_size()?;
        let prefix = config.normalised_prefix()?;
        let redirect_expiry = config.redirect_expiry()?;
        let client = config.client().await?;
        Ok(Self {
            client,
            bucket: config.bucket,
            prefix,
            part_size,
            redirect_expiry,
        })
    }

    fn name(&self, key: &Key) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Size, ETag and modification time of an object by prefixed name.
    async fn head_name(
        &self,
        name: &str,
    ) -> Result<(u64, Option<String>, Option<SystemTime>), StorageError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(name)
            .send()
            .await
            .map_err(|e| errors::map(e, "reading metadata of", name))?;
        Ok((
            out.content_length.unwrap_or(0).max(0) as u64,
            out.e_tag,
            out.last_modified.and_then(|t| SystemTime::try_from(t).ok()),
        ))
    }

    /// Streams an object (or a range of it): answers (total size, etag, modified, body range) and the body.
    async fn get_stream(
        &self,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<(ObjectHead, ByteStream), StorageError> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(name);
        if let Some(r) = &range {
            if r.start >= r.end {
                return self.empty_read(name, r.start).await;
            }
            request = request.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = match request.send().await {
            Ok(out) => out,
            // A range starting at or past the end: an empty read, as the contract says.
            Err(e) if errors::status(&e) == Some(416) => {
                return self.empty_read(name, range.map_or(0, |r| r.start)).await;
            }
            Err(e) => return Err(errors::map(e, "reading", name)),
        };
        let length = out.content_length.unwrap_or(0).max(0) as u64;
        let total = out
            .content_range
            .as_deref()
            .and_then(|cr| cr.rsplit('/').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(length);
        let start = range.map_or(0, |r| r.start);
        let head = ObjectHead {
            size: total,
            etag: out.e_tag,
            modified: out.last_modified.and_then(|t| SystemTime::try_from(t).ok()),
            range: start..start + length,
        };
        let body = Box::pin(stream::try_unfold(out.body, |mut body| async move {
            match body.try_next().await {
                Ok(Some(bytes)) => Ok(Some((bytes, body))),
                Ok(None) => Ok(None),
                Err(e) => Err(std::io::Error::other(e)),
            }
        }));
        Ok((head, body))
    }

    async fn empty_read(
        &self,
        name: &str,
        start: u64,
    ) -> Result<(ObjectHead, ByteStream), StorageError> {
        let (size, etag, modified) = self.head_name(name).await?;
        let at = start.min(size);
        let head = ObjectHead {
            size,
            etag,
            modified,
            range: at..at,
        };
        Ok((
            head,
            oci_storage_core::storage::bytes_stream(Default::default()),
        ))
    }

    async fn delete_name(&self, name: &str) -> Result<(), StorageError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if errors::status(&e) == Some(404) => Ok(()),
            Err(e) => Err(errors::map(e, "deleting", name)),
        }
    }

    fn meta(
        key: &Key,
        size: u64,
        etag: Option<String>,
        modified: Option<SystemTime>,
    ) -> ObjectMeta {
        ObjectMeta {
            key: key.clone(),
            size,
            version: etag,
            last_modified: modified,
        }
    }
}

/// What a read learned about the object.
#[derive(Debug)]
struct ObjectHead {
    size: u64,
    etag: Option<String>,
    modified: Option<SystemTime>,
    range: Range<u64>,
}

#[async_trait]
impl Storage for S3Storage {
    fn describe(&self) -> String {
        format!("s3:{}/{}", self.bucket, self.prefix)
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<GetResult, StorageError> {
        let (head, body) = self.get_stream(&self.name(key), range).await?;
        Ok(GetResult::new(
            Self::meta(key, head.size, head.etag, head.modified),
            head.range,
            body,
        ))
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta, StorageError> {
        let (size, etag, modified) = self.head_name(&self.name(key)).await?;
        Ok(Self::meta(key, size, etag, modified))
    }

    async fn put(
        &self,
        key: &Key,
        body: ByteStream,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError> {
        let create = mode == PutMode::Create;
        let condition = match mode {
            PutMode::Overwrite => Condition::default(),
            PutMode::Create => Condition {
                if_none_match: Some("*".into()),
                ..Condition::default()
            },
            PutMode::Update(version) => Condition {
                if_match: Some(version),
                ..Condition::default()
            },
        };
        let written = self
            .write_stream(&self.name(key), body, condition)
            .await
            .map_err(|e| errors::for_mode(e, create))?;
        Ok(Self::meta(
            key,
            written.size,
            written.etag,
            Some(SystemTime::now()),
        ))
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.delete_name(&self.name(key)).await
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StorageError> {
        let from_name = self.name(from);
        let (size, etag, _) = self.head_name(&from_name).await?;
        let written = self
            .compose(
                &self.name(to),
                &[compose::Source {
                    name: from_name,
                    size,
                    etag,
                }],
            )
            .await?;
        Ok(Self::meta(
            to,
            written.size,
            written.etag,
            Some(SystemTime::now()),
        ))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StorageError> {
        self.list_page(prefix, options).await
    }

    async fn create_multipart(&self, _key: &Key) -> Result<String, StorageError> {
        // Parts are ordinary objects: nothing to set up until the first one arrives.
        Ok(object_parts::new_upload_id())
    }

    async fn put_part(
        &self,
        _key: &Key,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<PartInfo, StorageError> {
        check_upload_id(upload_id)?;
        let tag = object_parts::new_part_tag();
        let name = format!(
            "{}{}",
            self.prefix,
            object_parts::part_name(upload_id, part_number, &tag)
        );
        let written = self.write_stream(&name, body, Condition::default()).await?;
        Ok(PartInfo {
            number: part_number,
            size: written.size,
            tag,
        })
    }

    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> Result<ObjectMeta, StorageError> {
        check_upload_id(upload_id)?;
        let sources = parts
            .iter()
            .map(|part| {
                Ok(compose::Source {
                    name: format!(
                        "{}{}",
                        self.prefix,
                        object_parts::recorded_part_name(upload_id, part)?
                    ),
                    size: part.size,
                    etag: None,
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        let written = self.compose(&self.name(key), &sources).await?;
        // The upload id is spent: its parts are garbage now.
        if let Err(e) = self.abort_multipart(key, upload_id).await {
            tracing::warn!(error = %e, "could not discard the parts of a completed upload");
        }
        Ok(Self::meta(
            key,
            written.size,
            written.etag,
            Some(SystemTime::now()),
        ))
    }

    async fn abort_multipart(&self, _key: &Key, upload_id: &str) -> Result<(), StorageError> {
        check_upload_id(upload_id)?;
        let prefix = format!("{}{}", self.prefix, object_parts::upload_prefix(upload_id));
        for name in self.list_names(&prefix).await? {
            self.delete_name(&name).await?;
        }
        Ok(())
    }

    async fn download_url(&self, key: &Key) -> Result<Option<String>, StorageError> {
        let Some(expiry) = self.redirect_expiry else {
            return Ok(None);
        };
        let name = self.name(key);
        let presigning = PresigningConfig::expires_in(expiry)
            .map_err(|e| StorageError::backend("s3 presigning", e))?;
        // Signed locally with the configured keys: the URL carries the key id and a
        // signature, never the secret.
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&name)
            .presigned(presigning)
            .await
            .map_err(|e| errors::map(e, "presigning", &name))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| errors::map(e, "reaching bucket", &self.bucket))
    }
}

#[cfg(test)]
mod tests;
