//! Paged, ordered listing.
//!
//! Entries are answered in the store's own order, never re-sorted: AWS S3 lists in byte
//! order, while some S3-compatible stores (SeaweedFS) list segment by segment, as a file
//! system walk does. Paging by "start after the last name seen" is exact in either order, so
//! the delimiter roll-up is done here, over one ordered stream of names, rather than by
//! merging S3's separate object and prefix lists (whose interleaving depends on the order).

use std::time::SystemTime;

use oci_storage_core::object_parts::is_internal;
use oci_storage_core::{Key, ListOptions, ListPage, ObjectMeta, StorageError};

use crate::{S3Storage, errors};

/// S3's largest page.
const MAX_PAGE: usize = 1000;

/// The name to continue after, past everything under a rolled-up prefix (`~` sorts after
/// every key character in both orders).
fn after_prefix(prefix: &str) -> String {
    format!("{prefix}~")
}

impl S3Storage {
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        options: ListOptions,
    ) -> Result<ListPage, StorageError> {
        let limit = options.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let full_prefix = format!("{}{prefix}", self.prefix);
        // The prefix rolled up last: foreign names under it that sort after `~` (non-ASCII)
        // must not roll it up again.
        let mut rolled: Option<String> = options
            .start_after
            .as_deref()
            .filter(|s| options.delimiter && s.ends_with('/'))
            .map(str::to_owned);
        let mut cursor = options.start_after.map(|s| {
            let s = if options.delimiter && s.ends_with('/') {
                after_prefix(&s)
            } else {
                s
            };
            format!("{}{s}", self.prefix)
        });
        let mut page = ListPage::default();
        let mut last: Option<String> = None;
        loop {
            let wanted = limit - page.objects.len() - page.prefixes.len();
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_start_after(cursor.clone())
                .max_keys(wanted as i32)
                .send()
                .await
                .map_err(|e| errors::map(e, "listing", &full_prefix))?;
            let truncated = out.is_truncated.unwrap_or(false);
            let mut rolled_up = false;
            for object in out.contents.unwrap_or_default() {
                let Some(name) = object.key else { continue };
                let Some(rel) = name.strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                if is_internal(rel) {
                    // Internal names sort after every key: nothing visible follows.
                    return Ok(page);
                }
                if rolled.as_deref().is_some_and(|r| rel.starts_with(r)) {
                    cursor = Some(name.clone());
                    continue;
                }
                if options.delimiter
                    && let Some(slash) = rel[prefix.len()..].find('/')
                {
                    let common = &rel[..prefix.len() + slash + 1];
                    page.prefixes.push(common.to_owned());
                    last = Some(common.to_owned());
                    rolled = Some(common.to_owned());
                    cursor = Some(format!("{}{}", self.prefix, after_prefix(common)));
                    rolled_up = true;
                    break;
                }
                last = Some(rel.to_owned());
                cursor = Some(name.clone());
                // Foreign objects whose names are not keys stay invisible.
                if let Ok(key) = Key::new(rel) {
                    page.objects.push(ObjectMeta {
                        key,
                        size: object.size.unwrap_or(0).max(0) as u64,
                        version: object.e_tag,
                        last_modified: object
                            .last_modified
                            .and_then(|t| SystemTime::try_from(t).ok()),
                    });
                }
            }
            let full = page.objects.len() + page.prefixes.len() >= limit;
            if full {
                page.next = if rolled_up || truncated { last } else { None };
                return Ok(page);
            }
            if !rolled_up && !truncated {
                return Ok(page);
            }
        }
    }

    /// Every object name under a (prefixed) prefix, internal ones included.
    pub(crate) async fn list_names(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| errors::map(e, "listing", prefix))?;
            names.extend(
                out.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
            match out.next_continuation_token {
                Some(next) if out.is_truncated == Some(true) => token = Some(next),
                _ => return Ok(names),
            }
        }
    }
}
