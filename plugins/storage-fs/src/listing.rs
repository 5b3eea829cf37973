//! Ordered, paged listing of the key space by walking directories. Keys are listed in
//! byte-wise order, which is not directory-entry order: a directory `a` sorts as `a/`, after a
//! file `a-b` and before `a0`.

use std::io;
use std::path::Path;

use oci_storage_core::{Key, ListOptions, ListPage};

/// Lists keys under `prefix` (a plain string prefix) below `root`. Blocking.
pub(crate) fn list(
    root: &Path,
    prefix: &str,
    options: &ListOptions,
    page_size: usize,
) -> io::Result<ListPage> {
    let limit = options.limit.unwrap_or(page_size).clamp(1, page_size);
    let base = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => "",
    };
    let mut walk = Walk {
        root,
        prefix,
        start_after: options.start_after.as_deref(),
        delimiter: options.delimiter,
        limit,
        page: ListPage::default(),
        last: None,
    };
    walk.dir(base)?;
    if walk.full() {
        walk.page.next = walk.last;
    }
    Ok(walk.page)
}

struct Walk<'a> {
    root: &'a Path,
    prefix: &'a str,
    start_after: Option<&'a str>,
    delimiter: bool,
    limit: usize,
    page: ListPage,
    last: Option<String>,
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.page.objects.len() + self.page.prefixes.len() >= self.limit
    }

    fn after_start(&self, key: &str) -> bool {
        self.start_after.is_none_or(|s| key > s)
    }

    /// Walks the directory for key prefix `rel` ("" or ending in '/').
    fn dir(&mut self, rel: &str) -> io::Result<()> {
        let entries = match std::fs::read_dir(self.root.join(rel)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(20) => return Ok(()), // ENOTDIR
            Err(e) => return Err(e),
        };
        let mut items = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue; // temporary files, locks, multipart staging
            }
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                items.push((format!("{rel}{name}/"), true));
            } else if file_type.is_file() {
                items.push((format!("{rel}{name}"), false));
            }
        }
        items.sort();
        for (key, is_dir) in items {
            if self.full() {
                return Ok(());
            }
            if is_dir {
                self.subdir(&key)?;
            } else if key.starts_with(self.prefix) && self.after_start(&key) {
                let meta = match std::fs::metadata(self.root.join(&key)) {
                    Ok(meta) => meta,
                    // Deleted between read_dir and stat: it is simply not there any more.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let key = Key::new(key).map_err(io::Error::other)?;
                self.last = Some(key.to_string());
                self.page.objects.push(crate::object_meta(key, &meta));
            }
        }
        Ok(())
    }

    fn subdir(&mut self, dir_key: &str) -> io::Result<()> {
        let relevant = dir_key.starts_with(self.prefix) || self.prefix.starts_with(dir_key);
        if !relevant {
            return Ok(());
        }
        let rolls_up = self.delimiter && dir_key.len() > self.prefix.len();
        if rolls_up {
            if self.after_start(dir_key) && has_visible_file(&self.root.join(dir_key))? {
                self.last = Some(dir_key.to_owned());
                self.page.prefixes.push(dir_key.to_owned());
            }
            return Ok(());
        }
        let may_hold_later_keys = match self.start_after {
            None => true,
            Some(s) => dir_key > s || s.starts_with(dir_key),
        };
        if may_hold_later_keys {
            self.dir(dir_key)?;
        }
        Ok(())
    }
}

fn has_visible_file(dir: &Path) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type()?;
        if file_type.is_file() || (file_type.is_dir() && has_visible_file(&entry.path())?) {
            return Ok(true);
        }
    }
    Ok(false)
}
