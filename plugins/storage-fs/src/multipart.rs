//! Multipart uploads on the filesystem, under `<root>/.multipart/<id>/`.
//!
//! Fast path: parts that arrive in order (as OCI chunks do) are appended to one `data` file,
//! so completing the upload is a rename, not a copy. `committed` records how many bytes of
//! `data` belong to finished parts; an append that fails (or a crash mid-append) is cut off
//! at that length before the next one. Appends hold an exclusive lock on `lock`, so processes
//! sharing the directory append one at a time.
//!
//! General path: a part that arrives out of order is written to a file of its own, and
//! completion concatenates the pieces (`copy_file_range` under `io::copy`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use oci_storage_core::{ByteStream, PartInfo, StorageError};

use crate::{FsStorage, TempFile, io_error, join_error, lock_exclusive};

const DATA: &str = "data";
const COMMITTED: &str = "committed";
const LOCK: &str = "lock";
/// Written (under the lock) when the upload is completed or aborted: later parts are refused.
const ENDED: &str = "ended";

/// Where a part's bytes are.
#[derive(Debug, PartialEq, Eq)]
enum PartPlace {
    /// `size` bytes at `offset` of the `data` file.
    Appended { offset: u64, size: u64 },
    /// A file of its own in the upload directory.
    File(String),
}

impl PartPlace {
    fn tag(&self) -> String {
        match self {
            Self::Appended { offset, size } => format!("a{offset}-{size}"),
            Self::File(name) => name.clone(),
        }
    }

    /// Parses a tag made by [`PartPlace::tag`]; anything else is refused (tags come back from
    /// callers, so they must not name paths).
    fn parse(tag: &str) -> Option<Self> {
        if let Some(rest) = tag.strip_prefix('a') {
            let (offset, size) = rest.split_once('-')?;
            return Some(Self::Appended {
                offset: offset.parse().ok()?,
                size: size.parse().ok()?,
            });
        }
        let valid = !tag.is_empty()
            && tag.len() <= 64
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && tag.as_bytes()[0].is_ascii_digit();
        valid.then(|| Self::File(tag.to_owned()))
    }
}

/// Next part number expected by the append path, and the committed length of `data`.
fn read_committed(dir: &Path) -> std::io::Result<(u32, u64)> {
    match std::fs::read_to_string(dir.join(COMMITTED)) {
        Ok(text) => {
            let mut it = text.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next()) {
                (Some(Ok(next)), Some(Ok(len))) => Ok((next as u32, len)),
                _ => Err(std::io::Error::other("corrupt multipart progress record")),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((1, 0)),
        Err(e) => Err(e),
    }
}

fn write_committed(dir: &Path, next: u32, len: u64) -> std::io::Result<()> {
    let temp = dir.join(".committed.tmp");
    std::fs::write(&temp, format!("{next} {len}"))?;
    std::fs::rename(temp, dir.join(COMMITTED))
}

impl FsStorage {
    /// Writes one part: appended to `data` when it is the next in order, else a file.
    pub(crate) async fn write_part(
        &self,
        dir: &Path,
        part_number: u32,
        body: ByteStream,
    ) -> Result<PartInfo, StorageError> {
        let lock_path = dir.join(LOCK);
        let dir_owned = dir.to_owned();
        // Held until this function returns: appends from other tasks or processes wait.
        let (lock, (next, committed)) = tokio::task::spawn_blocking(move || {
            let lock = lock_exclusive(&lock_path)?;
            if dir_owned.join(ENDED).exists() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the multipart upload has ended",
                ));
            }
            let progress = read_committed(&dir_owned)?;
            Ok::<_, std::io::Error>((lock, progress))
        })
        .await
        .map_err(join_error)?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StorageError::NotFound {
                    key: format!("multipart upload {}", dir.display()),
                }
            } else {
                io_error(dir, e)
            }
        })?;

        if part_number != next {
            drop(lock);
            let name = format!("{part_number}-{}", uuid::Uuid::new_v4().simple());
            let dest = dir.join(&name);
            let temp = self.write_temp(&dest, body, false).await?;
            let size = temp.size;
            temp.rename_to(&dest).await?;
            return Ok(PartInfo {
                number: part_number,
                size,
                tag: PartPlace::File(name).tag(),
            });
        }

        let data_path = dir.join(DATA);
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&data_path)
            .await
            .map_err(|e| io_error(&data_path, e))?;
        // Cut off whatever a failed or crashed append left behind.
        file.set_len(committed)
            .await
            .map_err(|e| io_error(&data_path, e))?;
        let file = std::sync::Arc::new(file.into_std().await);
        let size = match crate::write::write_body(&file, committed, body, &data_path).await {
            Ok(size) => size,
            Err(err) => {
                let _ = tokio::task::spawn_blocking(move || file.set_len(committed)).await;
                return Err(err);
            }
        };
        let dir_owned = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            write_committed(&dir_owned, part_number + 1, committed + size)
        })
        .await
        .map_err(join_error)?
        .map_err(|e| io_error(dir, e))?;
        drop(lock);
        Ok(PartInfo {
            number: part_number,
            size,
            tag: PartPlace::Appended {
                offset: committed,
                size,
            }
            .tag(),
        })
    }

    /// Joins the parts into a file ready to be renamed to `dest_dir/…`; answers its path.
    pub(crate) async fn join_parts(
        &self,
        dir: &Path,
        parts: &[PartInfo],
        dest_dir: &Path,
    ) -> Result<TempFile, StorageError> {
        let places = parts
            .iter()
            .map(|p| {
                PartPlace::parse(&p.tag).ok_or_else(|| StorageError::NotFound {
                    key: format!("part {}", p.tag),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut expected = 0u64;
        let contiguous = places.iter().all(|p| match p {
            PartPlace::Appended { offset, size } if *offset == expected => {
                expected += size;
                true
            }
            _ => false,
        });
        let temp = TempFile::create(dest_dir).await?;
        let fsync = self.fsync;
        let temp_path = temp.path.clone();
        let dir = dir.to_owned();
        let joined = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // A part still being written finishes (or fails) first; none can start afterwards.
            let _lock = end_upload(&dir)?;
            if contiguous {
                // The data file already holds the parts in order: trim and move it.
                let data = dir.join(DATA);
                let file = std::fs::OpenOptions::new().write(true).open(&data)?;
                file.set_len(expected)?;
                if fsync {
                    file.sync_all()?;
                }
                return std::fs::rename(&data, &temp_path);
            }
            let mut out = std::fs::OpenOptions::new().write(true).open(&temp_path)?;
            for place in &places {
                copy_place(&dir, place, &mut out)?;
            }
            if fsync {
                out.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(join_error)?;
        match joined {
            Ok(()) => Ok(temp),
            Err(e) => {
                temp.discard().await;
                Err(if e.kind() == std::io::ErrorKind::NotFound {
                    StorageError::NotFound {
                        key: "multipart part".into(),
                    }
                } else {
                    StorageError::backend("joining multipart parts", e)
                })
            }
        }
    }
}

fn copy_place(dir: &Path, place: &PartPlace, out: &mut std::fs::File) -> std::io::Result<()> {
    match place {
        PartPlace::File(name) => {
            let mut input = std::fs::File::open(dir.join(name))?;
            std::io::copy(&mut input, out)?;
        }
        PartPlace::Appended { offset, size } => {
            let mut input = std::fs::File::open(dir.join(DATA))?;
            input.seek(SeekFrom::Start(*offset))?;
            let copied = std::io::copy(&mut input.take(*size), out)?;
            if copied != *size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "appended part is shorter than recorded",
                ));
            }
        }
    }
    out.flush()
}

/// Marks an upload ended under its append lock (waiting for a part being written), so that
/// no part is written after; answers the held lock.
pub(crate) fn end_upload(dir: &Path) -> std::io::Result<std::fs::File> {
    let lock = lock_exclusive(&dir.join(LOCK))?;
    std::fs::write(dir.join(ENDED), b"")?;
    Ok(lock)
}

/// The directory of one multipart upload.
pub(crate) fn upload_dir(root: &Path, upload_id: &str) -> Result<PathBuf, StorageError> {
    let valid = !upload_id.is_empty()
        && upload_id.len() <= 64
        && upload_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(StorageError::NotFound {
            key: format!("multipart upload {upload_id:?}"),
        });
    }
    Ok(root.join(crate::MULTIPART_DIR).join(upload_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_refuse_paths() {
        let a = PartPlace::Appended { offset: 7, size: 9 };
        assert_eq!(PartPlace::parse(&a.tag()), Some(a));
        assert_eq!(
            PartPlace::parse("3-abc"),
            Some(PartPlace::File("3-abc".into()))
        );
        for bad in ["", "../x", "a-1", "ax-1", "abc", "3/x", "3-a.b"] {
            assert_eq!(PartPlace::parse(bad), None, "{bad}");
        }
    }
}
