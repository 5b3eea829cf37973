//! One download shared by every request for the same missing blob. The downloading task also
//! writes what it receives to a spool file on local disk and publishes how many bytes are
//! released (all but the last chunk until the digest is verified); requests that arrive later
//! read the spool from the start and follow it as it grows, so they get their first byte at
//! once instead of after the whole download, with constant memory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use oci_storage_core::ByteStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};

/// How far a download has come.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bytes of the spool that followers may read.
    pub released: u64,
    /// `Some(true)`: verified and complete; `Some(false)`: failed.
    pub outcome: Option<bool>,
}

/// A download under way.
#[derive(Debug)]
pub struct Download {
    pub notify: Notify,
    progress: watch::Sender<Progress>,
    spool: Mutex<Option<(Arc<tempfile::TempPath>, Option<u64>)>>,
}

impl Download {
    pub fn new() -> Self {
        Self {
            notify: Notify::new(),
            progress: watch::channel(Progress::default()).0,
            spool: Mutex::new(None),
        }
    }

    /// Ends the download for followers.
    pub fn finish(&self, ok: bool) {
        self.progress.send_modify(|p| p.outcome = Some(ok));
    }

    /// Opens the spool the downloader writes to (and announces it, with the blob's size).
    pub async fn open_spool(&self, size: Option<u64>) -> std::io::Result<Spool> {
        let file = tempfile::NamedTempFile::new()?;
        let path = Arc::new(file.into_temp_path());
        let writer = tokio::fs::OpenOptions::new()
            .append(true)
            .open(path.as_ref() as &std::path::Path)
            .await?;
        *self.spool.lock().unwrap_or_else(|p| p.into_inner()) = Some((Arc::clone(&path), size));
        Ok(Spool {
            _path: path,
            writer,
            written: 0,
        })
    }

    /// Publishes that `released` bytes of the spool may be read.
    pub fn release(&self, released: u64) {
        self.progress.send_modify(|p| p.released = released);
    }

    /// A stream following the download from its first byte, once its spool exists; `None`
    /// when the download ended without one (it failed before receiving anything).
    pub async fn follow(&self) -> Option<(Option<u64>, ByteStream)> {
        let mut rx = self.progress.subscribe();
        loop {
            let spool = self.spool.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some((path, size)) = spool {
                let path: PathBuf = path.as_ref().to_path_buf();
                let file = tokio::fs::File::open(&path).await.ok()?;
                return Some((size, following(file, rx)));
            }
            if rx.borrow().outcome.is_some() {
                return None;
            }
            rx.changed().await.ok()?;
        }
    }
}

/// The downloader's side of the spool.
#[derive(Debug)]
pub struct Spool {
    _path: Arc<tempfile::TempPath>,
    writer: tokio::fs::File,
    written: u64,
}

impl Spool {
    /// Appends a chunk; answers the bytes written before it (what may now be released).
    pub async fn append(&mut self, chunk: &[u8]) -> std::io::Result<u64> {
        let before = self.written;
        self.writer.write_all(chunk).await?;
        self.writer.flush().await?;
        self.written += chunk.len() as u64;
        Ok(before)
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

const READ_CHUNK: usize = 256 * 1024;

fn following(file: tokio::fs::File, rx: watch::Receiver<Progress>) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        (file, rx, 0u64, false),
        |(mut file, mut rx, read, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let progress = rx.borrow().clone();
                if read < progress.released {
                    let want = ((progress.released - read) as usize).min(READ_CHUNK);
                    let mut buf = BytesMut::zeroed(want);
                    return match file.read_exact(&mut buf).await {
                        Ok(_) => {
                            let bytes: Bytes = buf.freeze();
                            Some((Ok(bytes), (file, rx, read + want as u64, false)))
                        }
                        Err(e) => Some((Err(e), (file, rx, read, true))),
                    };
                }
                match progress.outcome {
                    Some(true) => return None,
                    Some(false) => {
                        let e = std::io::Error::other("the upstream download failed");
                        return Some((Err(e), (file, rx, read, true)));
                    }
                    None => {
                        if rx.changed().await.is_err() {
                            let e = std::io::Error::other("the upstream download stopped");
                            return Some((Err(e), (file, rx, read, true)));
                        }
                    }
                }
            }
        },
    ))
}
