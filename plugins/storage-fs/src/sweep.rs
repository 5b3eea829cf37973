//! Removes what interrupted work leaves behind, at startup, in the background: hidden
//! `.tmp-*` files of interrupted writes, compare-and-swap `.<name>.lock` sidecars whose object
//! is gone, multipart upload directories that never received a part (a process killed between
//! opening the upload and recording it), and directories left empty. Only what has been
//! untouched for [`STALE_AFTER`], so no running write can own it. Multipart uploads with parts
//! are discarded by their owner (the registry expires upload sessions), not here.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Something untouched for this long belongs to no running write.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(3600);

/// What one sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    pub temp_files: usize,
    pub lock_files: usize,
    pub empty_uploads: usize,
    pub empty_dirs: usize,
}

/// Sweeps `root`. Blocking.
pub(crate) fn sweep(root: &Path, older_than: Duration) -> Swept {
    let mut swept = Swept::default();
    let stale = |path: &Path| {
        std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= older_than)
    };
    let multipart = root.join(crate::MULTIPART_DIR);
    if let Ok(uploads) = std::fs::read_dir(&multipart) {
        for upload in uploads.flatten() {
            let dir = upload.path();
            if never_received_a_part(&dir) && stale(&dir) && std::fs::remove_dir_all(&dir).is_ok() {
                swept.empty_uploads += 1;
            }
        }
    }
    sweep_dir(root, root, &stale, &mut swept);
    if swept != Swept::default() {
        tracing::info!(?swept, "removed what interrupted writes left behind");
    }
    swept
}

/// A multipart upload directory holding nothing but bookkeeping (no `data`, no part files).
fn never_received_a_part(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name();
            matches!(name.to_str(), Some("lock" | "ended" | "committed"))
        })
    })
}

/// Sweeps one directory, depth first; answers whether it is now empty.
fn sweep_dir(root: &Path, dir: &Path, stale: &dyn Fn(&Path) -> bool, swept: &mut Swept) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(file_type) = entry.file_type() else {
            empty = false;
            continue;
        };
        if file_type.is_dir() {
            // Multipart uploads are their owner's (above for those without parts).
            if dir == root && name == crate::MULTIPART_DIR {
                empty = false;
                continue;
            }
            // Judged by its age before the sweep: removing stale entries touches it.
            let untouched = stale(&path);
            if sweep_dir(root, &path, stale, swept)
                && untouched
                && std::fs::remove_dir(&path).is_ok()
            {
                swept.empty_dirs += 1;
                continue;
            }
        } else if name.starts_with(".tmp-") && stale(&path) {
            if std::fs::remove_file(&path).is_ok() {
                swept.temp_files += 1;
                continue;
            }
        } else if let Some(object) = lock_sidecar_of(&name)
            && !dir.join(object).exists()
            && stale(&path)
            && std::fs::remove_file(&path).is_ok()
        {
            swept.lock_files += 1;
            continue;
        }
        empty = false;
    }
    empty
}

/// `name` of a compare-and-swap sidecar `.name.lock`.
pub(crate) fn lock_sidecar_of(file_name: &str) -> Option<&str> {
    file_name
        .strip_prefix('.')?
        .strip_suffix(".lock")
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_stale_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/.tmp-1"), b"partial").unwrap();
        std::fs::write(root.join("a/b/object"), b"kept").unwrap();
        std::fs::write(root.join("a/b/.object.lock"), b"").unwrap();
        std::fs::create_dir_all(root.join("uploads/x")).unwrap();
        std::fs::write(root.join("uploads/x/.state.json.lock"), b"").unwrap();
        std::fs::create_dir_all(root.join("empty/nested")).unwrap();
        let multipart = root.join(crate::MULTIPART_DIR);
        std::fs::create_dir_all(multipart.join("orphan")).unwrap();
        std::fs::create_dir_all(multipart.join("live")).unwrap();
        std::fs::write(multipart.join("live/data"), b"part").unwrap();

        assert_eq!(sweep(root, Duration::from_secs(3600)), Swept::default());
        let swept = sweep(root, Duration::ZERO);
        assert_eq!(
            swept,
            Swept {
                temp_files: 1,
                lock_files: 1,
                empty_uploads: 1,
                empty_dirs: 4,
            }
        );
        assert!(!root.join("a/b/.tmp-1").exists());
        assert!(root.join("a/b/object").exists() && root.join("a/b/.object.lock").exists());
        assert!(!root.join("uploads").exists() && !root.join("empty").exists());
        assert!(!multipart.join("orphan").exists() && multipart.join("live/data").exists());
    }

    #[test]
    fn sidecar_names() {
        assert_eq!(lock_sidecar_of(".state.json.lock"), Some("state.json"));
        assert_eq!(lock_sidecar_of("state.json.lock"), None);
        assert_eq!(lock_sidecar_of("..lock"), None);
        assert_eq!(lock_sidecar_of(".tmp-1"), None);
    }
}
