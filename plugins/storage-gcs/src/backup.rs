//! The `gcs` backup target (`backup.gcp`, or `backup.target` with `type: gcs`): the same
//! settings, client and resumable uploads as the storage, behind `StorageTarget`.

use std::sync::Arc;

use oci_storage_core::{BackupTarget, PluginContext, PluginError, StorageTarget};

use crate::GcsStorage;

/// The plugin factory, registered as backup target type `gcs`.
pub async fn backup_factory(
    ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn BackupTarget>, PluginError> {
    let config = crate::settings(&ctx, config)?;
    let description = format!("gcs:{}/{}", config.bucket, config.prefix.trim_matches('/'));
    let storage = GcsStorage::connect(config)
        .await
        .map_err(|e| e.rehomed("storage.gcs", &ctx.section))?;
    Ok(Arc::new(StorageTarget::new(Arc::new(storage), description)))
}
