//! Multipart uploads for object stores, kept as ordinary part objects.
//!
//! S3 refuses native parts under 5 MiB (except the last) and GCS has no multipart at all, but
//! the registry's chunks may be any size, arrive out of order and come from different
//! replicas. So each part is written as its own object in a namespace outside the key
//! grammar (`~` sorts after every key character and never starts a valid key), named with a
//! unique tag so a losing concurrent write of the same part number can never replace the
//! part that was recorded. Completion joins the recorded parts server-side.

use crate::{PartInfo, StorageError};

/// Where part objects live, relative to a backend's prefix.
pub const PARTS_NAMESPACE: &str = "~parts/";

/// Whether a name (relative to the backend's prefix) is internal, never a key.
pub fn is_internal(name: &str) -> bool {
    name.starts_with('~')
}

/// A configured object-name prefix, normalised: empty, or key segments with a trailing `/`
/// (the same grammar as keys, so `{prefix}{key}` names can be treated uniformly).
pub fn object_prefix(prefix: &str) -> Result<String, StorageError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    crate::Key::new(trimmed)?;
    Ok(format!("{trimmed}/"))
}

/// A fresh upload id (32 lowercase hex digits).
pub fn new_upload_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh tag for one write of a part.
pub fn new_part_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Checks an upload id before it becomes part of an object name.
pub fn check_upload_id(upload_id: &str) -> Result<(), StorageError> {
    if upload_id.len() == 32 && upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(StorageError::NotFound {
            key: format!("multipart upload {upload_id:?}"),
        })
    }
}

/// The prefix holding every part object of one upload.
pub fn upload_prefix(upload_id: &str) -> String {
    format!("{PARTS_NAMESPACE}{upload_id}/")
}

/// The object holding one written part.
pub fn part_name(upload_id: &str, number: u32, tag: &str) -> String {
    format!("{}{number:05}-{tag}", upload_prefix(upload_id))
}

/// The object of a recorded part, checking the tag the registry kept.
pub fn recorded_part_name(upload_id: &str, part: &PartInfo) -> Result<String, StorageError> {
    if part.tag.len() == 32 && part.tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(part_name(upload_id, part.number, &part.tag))
    } else {
        Err(StorageError::Backend {
            message: format!("part {} has a malformed tag", part.number),
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    #[test]
    fn part_names_are_never_keys() {
        let name = part_name(&new_upload_id(), 3, &new_part_tag());
        assert!(is_internal(&name));
        assert!(Key::new(&name).is_err());
        // Every key character sorts before '~', so internal names list after every key.
        assert!("zzz/zzz" < PARTS_NAMESPACE);
    }

    #[test]
    fn prefixes_are_normalised_and_checked() {
        assert_eq!(object_prefix("").unwrap(), "");
        assert_eq!(object_prefix("/").unwrap(), "");
        assert_eq!(object_prefix("prod").unwrap(), "prod/");
        assert_eq!(object_prefix("a/b/").unwrap(), "a/b/");
        assert!(object_prefix("../x").is_err());
        assert!(object_prefix("a//b").is_err());
    }

    #[test]
    fn upload_ids_are_checked() {
        assert!(check_upload_id(&new_upload_id()).is_ok());
        assert!(check_upload_id("../../etc").is_err());
        assert!(check_upload_id("").is_err());
    }
}
