//! The Google Cloud Storage [`Storage`] backend (JSON API, through `gcloud-storage`).
//!
//! Each key is the object `{prefix}{key}` of one bucket, and an object's generation is its
//! version token. Conditional writes are `ifGenerationMatch` preconditions, so they are atomic
//! on the server. Multipart uploads keep each part as an ordinary object in the internal
//! `~parts/` namespace (see [`oci_storage_core::object_parts`]) and are joined with compose.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use gcloud_storage::client::Client;
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::rewrite::RewriteObjectRequest;
use oci_storage_core::{
    ByteStream, GetResult, Key, ListOptions, ListPage, ObjectMeta, PartInfo, PluginContext,
    PluginError, PutMode, Storage, StorageError,
};
use serde::Deserialize;

mod backup;
mod client;
mod errors;
mod listing;
mod parts;
mod read;
mod upload;

#[cfg(test)]
mod tests;

/// Resumable uploads send chunks in multiples of this size (a GCS rule).
const CHUNK_GRANULE: usize = 256 * 1024;
/// Upper bound of `chunkSizeMib`: two chunks are held in memory per upload.
const MAX_CHUNK_MIB: f64 = 256.0;
/// Objects per listing request.
const PAGE_SIZE: usize = 1000;

/// Configuration of the `gcs` storage type (`storage.gcs` in config.yaml).
///
/// Holds no secret itself: credentials come from a file or the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GcsConfig {
    /// The bucket (must exist).
    pub bucket: String,
    /// Object name prefix for every key; a non-empty prefix is given a trailing `/`.
    #[serde(default)]
    pub prefix: String,
    /// Storage endpoint instead of `https://storage.googleapis.com` (emulators).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Project id (only informative: object operations do not need it). `projectID` is the
    /// seed configuration's spelling.
    #[serde(default, alias = "projectID")]
    pub project_id: Option<String>,
    /// Service-account JSON key; relative paths are resolved against the config's directory.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Send no credentials at all (emulators). Default: application default credentials.
    #[serde(default)]
    pub anonymous: bool,
    /// Size of each resumable-upload chunk, in MiB; a multiple of 256 KiB (0.25 MiB).
    #[serde(default = "default_chunk_size_mib")]
    pub chunk_size_mib: f64,
}

fn default_chunk_size_mib() -> f64 {
    8.0
}

impl GcsConfig {
    /// A configuration with defaults for everything but the bucket.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            project_id: None,
            credentials_file: None,
            anonymous: false,
            chunk_size_mib: default_chunk_size_mib(),
        }
    }
}

pub use backup::backup_factory;

/// The plugin factory, registered as storage type `gcs`.
pub async fn factory(
    ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn Storage>, PluginError> {
    Ok(Arc::new(
        GcsStorage::connect(settings(&ctx, config)?).await?,
    ))
}

/// The section's settings (for the storage and the backup target alike), with a relative
/// credentials file resolved against the configuration's directory.
fn settings(ctx: &PluginContext, config: serde_json::Value) -> Result<GcsConfig, PluginError> {
    if config.is_null() {
        return Err(PluginError::Config {
            path: ctx.section.clone(),
            message: "missing section: at least `bucket` is required".to_owned(),
        });
    }
    let mut config: GcsConfig = PluginError::parse_config(&ctx.section, config)?;
    if let Some(path) = &config.credentials_file
        && path.is_relative()
    {
        config.credentials_file = Some(ctx.base_dir.join(path));
    }
    Ok(config)
}

/// Objects of one bucket, under one prefix.
#[derive(Clone)]
pub struct GcsStorage {
    client: Client,
    bucket: String,
    /// Empty, or ending with `/`.
    prefix: String,
    endpoint: Option<String>,
    chunk_size: usize,
}

impl fmt::Debug for GcsStorage {
    // The client holds the token source: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsStorage")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl GcsStorage {
    /// Validates the configuration and builds the client. Contacts the network only to obtain
    /// default credentials (never when `anonymous` or `credentialsFile` is set).
    pub async fn connect(config: GcsConfig) -> Result<Self, PluginError> {
        let bucket = check_bucket(&config.bucket)?;
        let prefix = normalize_prefix(&config.prefix)?;
        let chunk_size = chunk_size_bytes(config.chunk_size_mib)?;
        let endpoint = config
            .endpoint
            .as_deref()
            .map(normalize_endpoint)
            .transpose()?;
        let client = client::build(&config, endpoint.as_deref()).await?;
        Ok(Self {
            client,
            bucket,
            prefix,
            endpoint,
            chunk_size,
        })
    }

    /// The object name of a key.
    fn name(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    fn meta(&self, key: Key, object: &Object) -> ObjectMeta {
        object_meta(key, object)
    }

    async fn stat(&self, name: &str) -> Result<Object, gcloud_storage::http::Error> {
        self.client
            .get_object(&GetObjectRequest {
                bucket: self.bucket.clone(),
                object: name.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// Deletes one object by name; a missing one is not an error.
    async fn delete_name(&self, name: &str) -> Result<(), gcloud_storage::http::Error> {
        let result = self
            .client
            .delete_object(&DeleteObjectRequest {
                bucket: self.bucket.clone(),
                object: name.to_owned(),
                ..Default::default()
            })
            .await;
        match result {
            Err(e) if errors::status(&e) == Some(404) => Ok(()),
            other => other,
        }
    }

    /// Server-side copy of one object by name; `rewrite` rather than `copy` because a copy
    /// that must move data (another location or storage class) may need several calls.
    async fn rewrite(&self, from: &str, to: &str) -> Result<Object, gcloud_storage::http::Error> {
        let mut token = None;
        loop {
            let response = self
                .client
                .rewrite_object(&RewriteObjectRequest {
                    source_bucket: self.bucket.clone(),
                    source_object: from.to_owned(),
                    destination_bucket: self.bucket.clone(),
                    destination_object: to.to_owned(),
                    rewrite_token: token.take(),
                    ..Default::default()
                })
                .await?;
            if response.done {
                return match response.resource {
                    Some(object) => Ok(object),
                    None => self.stat(to).await,
                };
            }
            match response.rewrite_token {
                Some(next) => token = Some(next),
                // Not done and nothing to continue with: ask for the result.
                None => return self.stat(to).await,
            }
        }
    }

    /// Every object name under a full name prefix (internal names included).
    async fn names_under(&self, prefix: &str) -> Result<Vec<String>, gcloud_storage::http::Error> {
        let mut names = Vec::new();
        let mut page_token = None;
        loop {
            let page = self
                .client
                .list_objects(&ListObjectsRequest {
                    bucket: self.bucket.clone(),
                    prefix: Some(prefix.to_owned()),
                    max_results: Some(PAGE_SIZE as i32),
                    page_token: page_token.take(),
                    ..Default::default()
                })
                .await?;
            names.extend(page.items.into_iter().flatten().map(|o| o.name));
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => return Ok(names),
            }
        }
    }
}

#[async_trait]
impl Storage for GcsStorage {
    fn describe(&self) -> String {
        format!("gcs:{}/{}", self.bucket, self.prefix)
    }

    /// Ready when the bucket answers a one-object listing.
    async fn check(&self) -> Result<(), StorageError> {
        self.client
            .list_objects(&ListObjectsRequest {
                bucket: self.bucket.clone(),
                prefix: Some(self.prefix.clone()),
                max_results: Some(1),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| errors::backend(format!("listing bucket {}", self.bucket), e))
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<GetResult, StorageError> {
        read::get(self, key, range).await
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta, StorageError> {
        let object = self
            .stat(&self.name(key))
            .await
            .map_err(|e| errors::read_error(key.as_str(), "head", e))?;
        Ok(self.meta(key.clone(), &object))
    }

    async fn put(
        &self,
        key: &Key,
        body: ByteStream,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError> {
        let condition = upload::Condition::from_mode(&mode);
        let object = upload::put(self, &self.name(key), body, condition)
            .await
            .map_err(|e| e.into_storage_error(key.as_str(), &mode))?;
        Ok(self.meta(key.clone(), &object))
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.delete_name(&self.name(key))
            .await
            .map_err(|e| errors::backend(format!("deleting {key}"), e))
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StorageError> {
        let object = self
            .rewrite(&self.name(from), &self.name(to))
            .await
            .map_err(|e| errors::read_error(from.as_str(), "copy", e))?;
        Ok(self.meta(to.clone(), &object))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StorageError> {
        listing::list(self, prefix, options).await
    }

    async fn create_multipart(&self, _key: &Key) -> Result<String, StorageError> {
        // Nothing is written until the first part: an abandoned upload costs nothing.
        Ok(oci_storage_core::object_parts::new_upload_id())
    }

    async fn put_part(
        &self,
        _key: &Key,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<PartInfo, StorageError> {
        parts::put_part(self, upload_id, part_number, body).await
    }

    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> Result<ObjectMeta, StorageError> {
        parts::complete(self, key, upload_id, parts).await
    }

    async fn abort_multipart(&self, _key: &Key, upload_id: &str) -> Result<(), StorageError> {
        parts::abort(self, upload_id).await
    }
}

fn object_meta(key: Key, object: &Object) -> ObjectMeta {
    ObjectMeta {
        key,
        size: u64::try_from(object.size).unwrap_or(0),
        version: Some(object.generation.to_string()),
        last_modified: object.updated.or(object.time_created).map(SystemTime::from),
    }
}

fn config_error(field: &str, message: impl Into<String>) -> PluginError {
    PluginError::Config {
        path: format!("storage.gcs.{field}"),
        message: message.into(),
    }
}

/// GCS bucket names: 3..=222 characters of `[a-z0-9._-]`, starting and ending alphanumeric.
fn check_bucket(bucket: &str) -> Result<String, PluginError> {
    let valid_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let alnum_ends = bucket
        .bytes()
        .next()
        .zip(bucket.bytes().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    if (3..=222).contains(&bucket.len()) && valid_chars && alnum_ends {
        Ok(bucket.to_owned())
    } else {
        Err(config_error(
            "bucket",
            format!(
                "{bucket:?} is not a valid bucket name (3-222 characters of a-z, 0-9, '.', '_', \
                 '-', starting and ending with a letter or digit)"
            ),
        ))
    }
}

/// `""` stays empty; anything else gets exactly one trailing `/`.
fn normalize_prefix(prefix: &str) -> Result<String, PluginError> {
    oci_storage_core::object_parts::object_prefix(prefix)
        .map_err(|e| config_error("prefix", format!("{prefix:?}: {e}")))
}

fn normalize_endpoint(endpoint: &str) -> Result<String, PluginError> {
    let trimmed = endpoint.trim_end_matches('/');
    if (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && trimmed.len() > "https://".len()
    {
        Ok(trimmed.to_owned())
    } else {
        Err(config_error(
            "endpoint",
            format!("{endpoint:?} must be an http:// or https:// URL"),
        ))
    }
}

fn chunk_size_bytes(mib: f64) -> Result<usize, PluginError> {
    let granules = mib * 4.0; // 256 KiB granules per MiB
    if !(mib > 0.0 && mib <= MAX_CHUNK_MIB && granules.fract() == 0.0) {
        return Err(config_error(
            "chunkSizeMib",
            format!("{mib} must be a positive multiple of 0.25 (256 KiB), at most {MAX_CHUNK_MIB}"),
        ));
    }
    Ok(granules as usize * CHUNK_GRANULE)
}
