//! The `s3` backup target (`backup.aws`, or `backup.target` with `type: s3`): the same
//! settings, client and streamed multipart writes as the storage, behind `StorageTarget`.

use std::sync::Arc;

use oci_storage_core::{BackupTarget, PluginContext, PluginError, StorageTarget};

use crate::{S3Config, S3Storage};

/// The plugin factory, registered as backup target type `s3`.
pub async fn backup_factory(
    ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn BackupTarget>, PluginError> {
    let config: S3Config = PluginError::parse_config(&ctx.section, config)?;
    let description = format!("s3:{}/{}", config.bucket, config.prefix.trim_matches('/'));
    let storage = S3Storage::connect(config)
        .await
        .map_err(|e| e.rehomed("storage.s3", &ctx.section))?;
    Ok(Arc::new(StorageTarget::new(Arc::new(storage), description)))
}
