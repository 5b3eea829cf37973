//! The `fs` backup target (`backup.target` with `type: fs`): a directory, for NFS mounts and
//! tests, written exactly as the fs storage writes (atomic renames, fsync), behind
//! `StorageTarget`. Unlike the storage, its `path` has no default: a default would be the
//! registry's own `./data`.

use std::path::PathBuf;
use std::sync::Arc;

use oci_storage_core::{BackupTarget, PluginContext, PluginError, StorageTarget};
use serde::Deserialize;

use crate::{FsConfig, FsStorage};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FsTargetConfig {
    /// The directory; relative paths are resolved against the configuration's directory.
    path: PathBuf,
    #[serde(default = "crate::default_true")]
    fsync: bool,
}

/// The plugin factory, registered as backup target type `fs`.
pub async fn backup_factory(
    ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn BackupTarget>, PluginError> {
    if config.is_null() {
        return Err(PluginError::Config {
            path: format!("{}.path", ctx.section),
            message: "required: the directory backups are written to".into(),
        });
    }
    let config: FsTargetConfig = PluginError::parse_config(&ctx.section, config)?;
    let path = ctx.base_dir.join(config.path);
    let storage = FsStorage::open(FsConfig {
        path: path.clone(),
        fsync: config.fsync,
    })
    .await
    .map_err(|e| PluginError::Init(format!("{}: {}: {e}", ctx.section, path.display())))?;
    let description = format!("fs:{}", path.display());
    Ok(Arc::new(StorageTarget::new(Arc::new(storage), description)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(base: &std::path::Path) -> PluginContext {
        PluginContext::new(base.to_owned(), "backup.target")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_directory_target_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"path": "backups", "fsync": false});
        let target = backup_factory(ctx(dir.path()), config).await.unwrap();
        assert_eq!(
            target.describe(),
            format!("fs:{}", dir.path().join("backups").display())
        );
        oci_storage_core::testkit::run_backup_target_conformance(target).await;
    }

    #[tokio::test]
    async fn the_path_is_required_and_errors_name_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let missing = backup_factory(ctx(dir.path()), serde_json::Value::Null)
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("backup.target.path"),
            "{missing}"
        );
        let typo = serde_json::json!({"path": "b", "fsnyc": true});
        let typo = backup_factory(ctx(dir.path()), typo).await.unwrap_err();
        assert!(typo.to_string().contains("backup.target"), "{typo}");
    }
}
