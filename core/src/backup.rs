//! The `BackupTarget` trait: a bucket (S3, GCS, …) that backups are written to and restored
//! from. Implemented by backup plugins; called by the backup service.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::ByteStream;

/// One object held by a backup target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupObject {
    /// Path relative to the target's configured prefix, `/`-separated.
    pub path: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
}

/// Why a backup target call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("backup object not found: {0}")]
    NotFound(String),
    #[error("backup target error: {0}")]
    Target(String),
}

/// Where backups go.
///
/// # Contract
/// - A backup is a set of objects under a path prefix (one prefix per snapshot); content
///   addressed blobs may be shared between snapshots, so `exists` lets a backup skip them.
/// - `put` is atomic and streaming (no whole object in memory); a failed input stream leaves
///   nothing behind.
/// - `list` answers every object under the prefix, in lexical order.
/// - Credentials come from configuration or the platform's default chain, never from a request.
#[async_trait]
pub trait BackupTarget: Send + Sync + fmt::Debug {
    fn describe(&self) -> String;
    async fn put(&self, path: &str, body: ByteStream, size: u64) -> Result<(), BackupError>;
    async fn get(&self, path: &str) -> Result<ByteStream, BackupError>;
    async fn exists(&self, path: &str) -> Result<bool, BackupError>;
    async fn list(&self, prefix: &str) -> Result<Vec<BackupObject>, BackupError>;
    async fn delete(&self, path: &str) -> Result<(), BackupError>;
}
