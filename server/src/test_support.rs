//! Shared by the unit tests: a real fs storage in a temporary directory.

use std::sync::Arc;

use oci_storage_core::Storage;

/// An empty fs storage (no fsync) living as long as the returned directory.
pub async fn temporary_storage() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = oci_storage_storage_fs::FsStorage::open(oci_storage_storage_fs::FsConfig {
        path: dir.path().to_owned(),
        fsync: false,
    })
    .await
    .unwrap();
    (dir, Arc::new(storage))
}
