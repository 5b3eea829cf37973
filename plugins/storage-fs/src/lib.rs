//! The filesystem [`Storage`] backend: each key is a file under a root directory. Writes go to
//! a hidden temporary file in the destination directory and are renamed (or hard-linked, for
//! create-only writes) into place, so a crash at any point leaves either the old object or the
//! new one, plus at worst a hidden temporary file that listing ignores.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use oci_storage_core::{
    ByteStream, GetResult, Key, ListOptions, ListPage, ObjectMeta, PartInfo, PluginContext,
    PluginError, PutMode, Storage, StorageError,
};
use serde::Deserialize;

mod backup;
mod listing;
mod multipart;
mod read;
mod sweep;
mod write;

/// Hidden directory under the root holding multipart uploads.
const MULTIPART_DIR: &str = ".multipart";
/// Default (and largest) listing page size. Every page reads and sorts each directory it
/// passes again (paging is stateless), so a directory of N entries costs N²/PAGE_SIZE: with
/// 1,000 a 100,000-blob `blobs/sha256` was read 100 times per full listing (the GC
/// benchmark). Pages of 10,000 keys hold about 2 MiB.
const PAGE_SIZE: usize = 10_000;

/// Configuration of the `fs` storage type (`storage.fs` in config.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FsConfig {
    /// Root directory; relative paths are resolved against the working directory.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// fsync files and directories before a write is acknowledged (durability across power
    /// loss; atomicity across crashes holds either way).
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_path() -> PathBuf {
    PathBuf::from("./data")
}

fn default_true() -> bool {
    true
}

impl Default for FsConfig {
    fn default() -> Self {
        Self {
            path: default_path(),
            fsync: true,
        }
    }
}

pub use backup::backup_factory;

/// The plugin factory, registered as storage type `fs`.
pub async fn factory(
    ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn Storage>, PluginError> {
    let mut config: FsConfig = if config.is_null() {
        FsConfig::default()
    } else {
        PluginError::parse_config("storage.fs", config)?
    };
    if config.path.is_relative() {
        config.path = ctx.base_dir.join(&config.path);
    }
    let storage = FsStorage::open(config)
        .await
        .map_err(|e| PluginError::Init(format!("fs storage: {e}")))?;
    // What a crash leaves (temporary files, lock sidecars, empty upload directories) is
    // invisible but takes space: sweep it in the background, without delaying startup.
    let root = storage.root.clone();
    tokio::task::spawn_blocking(move || sweep::sweep(&root, sweep::STALE_AFTER));
    Ok(Arc::new(storage))
}

/// Filesystem storage rooted at one directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
    fsync: bool,
}

impl FsStorage {
    /// Creates the root directory if needed.
    pub async fn open(config: FsConfig) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(&config.path).await?;
        let root = tokio::fs::canonicalize(&config.path).await?;
        Ok(Self {
            root,
            fsync: config.fsync,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &Key) -> PathBuf {
        // Key's grammar guarantees relative, dot-free segments.
        self.root.join(key.as_str())
    }

    fn multipart_dir(&self, upload_id: &str) -> Result<PathBuf, StorageError> {
        multipart::upload_dir(&self.root, upload_id)
    }

    /// Streams `body` into a new hidden temporary file next to `dest`. `sync`: fsync it (when
    /// the storage is configured to); temporary parts skip that.
    async fn write_temp(
        &self,
        dest: &Path,
        body: ByteStream,
        sync: bool,
    ) -> Result<TempFile, StorageError> {
        let dir = dest.parent().expect("keys have a parent under the root");
        let temp = TempFile::create(dir).await?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&temp.path)
            .await
            .map_err(|e| io_error(&temp.path, e))?;
        let file = Arc::new(file.into_std().await);
        let size = write::write_body(&file, 0, body, &temp.path).await?;
        if sync && self.fsync {
            tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .map_err(join_error)?
                .map_err(|e| io_error(&temp.path, e))?;
        }
        Ok(TempFile { size, ..temp })
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        if self.fsync {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                .await
                .map_err(join_error)?
                .map_err(|e| StorageError::backend("fsync of directory", e))?;
        }
        Ok(())
    }

    /// Removes now-empty directories from `dir` up to (not including) the root.
    async fn prune_dirs(&self, mut dir: &Path) {
        while dir != self.root && dir.starts_with(&self.root) {
            if tokio::fs::remove_dir(dir).await.is_err() {
                return; // not empty, or already gone: either way, stop
            }
            match dir.parent() {
                Some(parent) => dir = parent,
                None => return,
            }
        }
    }

    async fn meta(&self, key: &Key, path: &Path) -> Result<ObjectMeta, StorageError> {
        let m = tokio::fs::metadata(path)
            .await
            .map_err(|e| not_found_or(key, path, e))?;
        if !m.is_file() {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        }
        Ok(object_meta(key.clone(), &m))
    }

    /// Moves a finished temporary file to `dest` according to `mode`.
    async fn commit(
        &self,
        key: &Key,
        dest: &Path,
        temp: TempFile,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError> {
        let dir = dest.parent().expect("keys have a parent").to_owned();
        match mode {
            PutMode::Overwrite => temp.rename_to(dest).await?,
            PutMode::Create => {
                // link(2) fails if the destination exists: an atomic create-if-absent.
                match tokio::fs::hard_link(&temp.path, dest).await {
                    Ok(()) => temp.discard().await,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        temp.discard().await;
                        return Err(StorageError::AlreadyExists {
                            key: key.to_string(),
                        });
                    }
                    Err(e) => {
                        temp.discard().await;
                        return Err(io_error(dest, e));
                    }
                }
            }
            PutMode::Update(expected) => {
                let lock_path = lock_sidecar(dest);
                let dest_owned = dest.to_owned();
                let key_owned = key.clone();
                let temp_path = temp.path.clone();
                // An exclusive lock on a sidecar file serialises compare-and-swap writers of
                // this key, across processes sharing the directory.
                let result = tokio::task::spawn_blocking(move || {
                    let _lock = lock_exclusive(&lock_path)?;
                    let current = match std::fs::metadata(&dest_owned) {
                        Ok(m) => Some(version_of(&m)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        Err(e) => return Err(e),
                    };
                    if current.as_deref() != Some(expected.as_str()) {
                        return Ok(false);
                    }
                    std::fs::rename(&temp_path, &dest_owned)?;
                    Ok(true)
                })
                .await
                .map_err(join_error)?;
                match result {
                    Ok(true) => {}
                    Ok(false) => {
                        temp.discard().await;
                        return Err(StorageError::Precondition {
                            key: key_owned.to_string(),
                        });
                    }
                    Err(e) => {
                        temp.discard().await;
                        return Err(io_error(dest, e));
                    }
                }
            }
        }
        self.sync_dir(&dir).await?;
        self.meta(key, dest).await
    }
}

#[async_trait]
impl Storage for FsStorage {
    fn describe(&self) -> String {
        format!("fs:{}", self.root.display())
    }

    /// Ready when the root is a directory this process can create files in.
    async fn check(&self) -> Result<(), StorageError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let probe = root.join(format!(".tmp-ready-{}", uuid::Uuid::new_v4().simple()));
            std::fs::File::create_new(&probe)?;
            std::fs::remove_file(&probe)
        })
        .await
        .map_err(join_error)?
        .map_err(|e| io_error(&self.root, e))
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<GetResult, StorageError> {
        let path = self.path(key);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| not_found_or(key, &path, e))?;
        let m = file.metadata().await.map_err(|e| io_error(&path, e))?;
        if !m.is_file() {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        }
        let meta = object_meta(key.clone(), &m);
        let range = match range {
            None => 0..meta.size,
            Some(r) => {
                let start = r.start.min(meta.size);
                start..r.end.clamp(start, meta.size)
            }
        };
        let file = Arc::new(file.into_std().await);
        let body = read::read_range(file.clone(), range.clone());
        // The server may send the bytes from the file itself (server.sendfile).
        Ok(GetResult::new(meta, range, body).with_file(file))
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta, StorageError> {
        self.meta(key, &self.path(key)).await
    }

    async fn put(
        &self,
        key: &Key,
        body: ByteStream,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError> {
        let dest = self.path(key);
        let temp = self.write_temp(&dest, body, true).await?;
        self.commit(key, &dest, temp, mode).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                // The compare-and-swap sidecar goes with its object (a writer still holding
                // it finds the object gone, which fails its condition anyway).
                let _ = tokio::fs::remove_file(lock_sidecar(&path)).await;
                if let Some(dir) = path.parent() {
                    self.prune_dirs(dir).await;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StorageError> {
        let src = self.path(from);
        let dest = self.path(to);
        let dir = dest.parent().expect("keys have a parent").to_owned();
        let temp = TempFile::create(&dir).await?;
        // Objects are immutable once written (writes replace files), so a hard link is a
        // zero-cost, atomic copy.
        tokio::fs::remove_file(&temp.path)
            .await
            .map_err(|e| io_error(&temp.path, e))?;
        if let Err(e) = tokio::fs::hard_link(&src, &temp.path).await {
            return Err(not_found_or(from, &src, e));
        }
        temp.rename_to(&dest).await?;
        self.sync_dir(&dir).await?;
        self.meta(to, &dest).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StorageError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            listing::list(&root, &prefix, &options, PAGE_SIZE)
                .map_err(|e| StorageError::backend(format!("listing {prefix:?}"), e))
        })
        .await
        .map_err(join_error)?
    }

    async fn create_multipart(&self, _key: &Key) -> Result<String, StorageError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.multipart_dir(&id)?;
        create_dirs(&dir).await?;
        Ok(id)
    }

    async fn put_part(
        &self,
        _key: &Key,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<PartInfo, StorageError> {
        let dir = self.multipart_dir(upload_id)?;
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(StorageError::NotFound {
                key: format!("multipart upload {upload_id}"),
            });
        }
        self.write_part(&dir, part_number, body).await
    }

    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> Result<ObjectMeta, StorageError> {
        let dir = self.multipart_dir(upload_id)?;
        let dest = self.path(key);
        let dest_dir = dest.parent().expect("keys have a parent").to_owned();
        let joined = self.join_parts(&dir, parts, &dest_dir).await?;
        joined.rename_to(&dest).await?;
        self.sync_dir(&dest_dir).await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        self.meta(key, &dest).await
    }

    async fn abort_multipart(&self, _key: &Key, upload_id: &str) -> Result<(), StorageError> {
        let dir = self.multipart_dir(upload_id)?;
        // Wait for a part being appended, and stop later ones, before removing the directory.
        let lock_dir = dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            lock_dir
                .exists()
                .then(|| multipart::end_upload(&lock_dir))
                .transpose()
        })
        .await;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&dir, e)),
        }
    }
}

/// A hidden temporary file in a destination directory, removed unless renamed into place.
struct TempFile {
    path: PathBuf,
    size: u64,
}

/// `create_dir_all` that tries again when a concurrent delete prunes a parent it has just
/// created (deletes remove the directories they leave empty, up to the root): the soak saw
/// `uploads/` removed between creating it and creating `uploads/<id>` in it.
async fn create_dirs(dir: &Path) -> Result<(), StorageError> {
    let mut attempts = 0;
    loop {
        match tokio::fs::create_dir_all(dir).await {
            Ok(()) => return Ok(()),
            // NotFound: a parent was pruned under it. AlreadyExists: std found an entry it then
            // saw pruned before it could check that it is a directory. Either way, again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists
                ) && attempts < 5 =>
            {
                attempts += 1
            }
            Err(e) => return Err(io_error(dir, e)),
        }
    }
}

impl TempFile {
    /// Creates the directory (retrying if a concurrent delete prunes it) and an empty file.
    async fn create(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut attempts = 0;
        loop {
            create_dirs(dir).await?;
            match tokio::fs::File::create_new(&path).await {
                Ok(_) => return Ok(Self { path, size: 0 }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 5 => {
                    attempts += 1;
                }
                Err(e) => return Err(io_error(&path, e)),
            }
        }
    }

    async fn rename_to(self, dest: &Path) -> Result<(), StorageError> {
        match tokio::fs::rename(&self.path, dest).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.discard().await;
                Err(io_error(dest, e))
            }
        }
    }

    async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

fn object_meta(key: Key, m: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.len(),
        version: Some(version_of(m)),
        last_modified: m.modified().ok(),
    }
}

/// A version token that changes whenever the file is replaced (new inode) or rewritten.
fn version_of(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let nanos = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}-{:x}", m.ino(), nanos, m.len())
}

/// The sidecar file whose lock serialises compare-and-swap writers of `object`.
fn lock_sidecar(object: &Path) -> PathBuf {
    let name = object.file_name().unwrap_or_default().to_string_lossy();
    object.with_file_name(format!(".{name}.lock"))
}

/// Opens (creating) a lock file and takes an exclusive lock on it, held until the file is
/// dropped. Blocking.
fn lock_exclusive(path: &Path) -> std::io::Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    lock.lock()?;
    Ok(lock)
}

fn io_error(path: &Path, e: std::io::Error) -> StorageError {
    StorageError::backend(format!("{}", path.display()), e)
}

fn not_found_or(key: &Key, path: &Path, e: std::io::Error) -> StorageError {
    // ENOTDIR: a path component is a file, so the key cannot exist.
    if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(20) {
        StorageError::NotFound {
            key: key.to_string(),
        }
    } else {
        io_error(path, e)
    }
}

fn join_error(e: tokio::task::JoinError) -> StorageError {
    StorageError::backend("blocking task failed", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn storage_in(dir: &Path, fsync: bool) -> FsStorage {
        FsStorage::open(FsConfig {
            path: dir.to_owned(),
            fsync,
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(dir.path(), true).await;
        oci_storage_core::testkit::run_conformance(Arc::new(storage)).await;
    }

    #[tokio::test]
    async fn leftover_temp_files_are_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(dir.path(), false).await;
        // What a kill -9 in the middle of a write leaves behind.
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/.tmp-123"), b"partial").unwrap();
        let page = storage.list("", ListOptions::default()).await.unwrap();
        assert!(page.objects.is_empty(), "{page:?}");
        let key = Key::new("a/.tmp-123");
        assert!(key.is_err(), "temporary names are not valid keys");
    }

    /// Writers creating `uploads/<id>/…` while deletes of other sessions prune `uploads/`
    /// once it is empty: no write may fail for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_race_with_deletes_that_prune_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(storage_in(dir.path(), false).await);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let storage = storage.clone();
                tokio::spawn(async move {
                    for i in 0..300 {
                        let key = Key::new(format!("uploads/s{t}-{i}/state.json")).unwrap();
                        let body = oci_storage_core::storage::bytes_stream("{}".into());
                        storage.put(&key, body, PutMode::Overwrite).await?;
                        storage.delete(&key).await?;
                    }
                    Ok::<_, StorageError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }
}
