//! Removes what interrupted writes leave behind: hidden `.tmp-*` files old enough that no
//! running write can still own them. Multipart uploads are discarded by their owner (the
//! registry expires upload sessions), not here.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// A temporary file untouched for this long belongs to no running write.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Deletes stale temporary files under `root`; answers how many. Blocking.
pub(crate) fn stale_temp_files(root: &Path, older_than: Duration) -> usize {
    let now = SystemTime::now();
    let mut removed = 0;
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if file_type.is_dir() {
                dirs.push(entry.path());
            } else if name.starts_with(".tmp-") {
                let age = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                if age >= older_than && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed stale temporary files");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_stale_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/.tmp-1"), b"partial").unwrap();
        std::fs::write(dir.path().join("a/b/object"), b"kept").unwrap();
        assert_eq!(stale_temp_files(dir.path(), Duration::from_secs(3600)), 0);
        assert_eq!(stale_temp_files(dir.path(), Duration::ZERO), 1);
        assert!(!dir.path().join("a/b/.tmp-1").exists());
        assert!(dir.path().join("a/b/object").exists());
    }
}
