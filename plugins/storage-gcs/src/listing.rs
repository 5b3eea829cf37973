//! Listing keys. GCS lists in byte order already; this adds the contract's details: an
//! exclusive `start_after` (GCS's `startOffset` is inclusive), a limit counting objects and
//! prefixes together (emulators count only objects), and hiding the internal `~parts/`
//! namespace, which sorts after every key, so reaching it means the listing is complete.

use gcloud_storage::http::objects::Object;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use oci_storage_core::object_parts::is_internal;
use oci_storage_core::{Key, ListOptions, ListPage, ObjectMeta, StorageError};

use crate::{GcsStorage, PAGE_SIZE, errors, object_meta};

/// Sorts after every character a key may contain.
const AFTER_EVERY_KEY: char = '~';

pub(crate) async fn list(
    store: &GcsStorage,
    prefix: &str,
    options: ListOptions,
) -> Result<ListPage, StorageError> {
    let root = store.prefix.as_str();
    let limit = options.limit.unwrap_or(PAGE_SIZE).max(1);
    let start_offset = options.start_after.as_deref().map(|after| {
        if options.delimiter && after.ends_with('/') {
            // `after` is a rolled-up prefix: skip everything under it, not only itself.
            format!("{root}{after}{AFTER_EVERY_KEY}")
        } else {
            format!("{root}{after}")
        }
    });
    let mut collector = Collector::new(root, options.start_after.as_deref(), limit);
    let mut page_token = None;
    loop {
        let page = store
            .client
            .list_objects(&ListObjectsRequest {
                bucket: store.bucket.clone(),
                prefix: Some(format!("{root}{prefix}")),
                delimiter: options.delimiter.then(|| "/".to_owned()),
                start_offset: start_offset.clone(),
                // Leaves the internal namespace out on the server already.
                end_offset: Some(format!("{root}{AFTER_EVERY_KEY}")),
                max_results: Some(collector.wanted().min(PAGE_SIZE) as i32),
                page_token: page_token.take(),
                ..Default::default()
            })
            .await
            .map_err(|e| errors::backend(format!("listing {prefix:?}"), e))?;
        let more = page.next_page_token.filter(|token| !token.is_empty());
        let flow = collector.absorb(
            page.items.unwrap_or_default(),
            page.prefixes.unwrap_or_default(),
        );
        match (flow, more) {
            (Flow::Continue, Some(token)) => page_token = Some(token),
            _ => return Ok(collector.finish()),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

enum Entry {
    Object(ObjectMeta),
    Prefix(String),
}

impl Entry {
    fn public_name(&self) -> String {
        match self {
            Self::Object(meta) => meta.key.as_str().to_owned(),
            Self::Prefix(prefix) => prefix.clone(),
        }
    }
}

/// Gathers entries from successive GCS pages, in order, up to one past the limit (to know
/// whether more follow).
struct Collector {
    root: String,
    /// Only full names strictly greater than this one are taken: the exclusive start, then
    /// the last name taken (a prefix may repeat across pages).
    floor: Option<String>,
    limit: usize,
    entries: Vec<Entry>,
    truncated: bool,
}

impl Collector {
    fn new(root: &str, start_after: Option<&str>, limit: usize) -> Self {
        Self {
            root: root.to_owned(),
            floor: start_after.map(|after| format!("{root}{after}")),
            limit,
            entries: Vec::new(),
            truncated: false,
        }
    }

    /// How many more entries to ask for.
    fn wanted(&self) -> usize {
        self.limit
            .saturating_add(1)
            .saturating_sub(self.entries.len())
            .max(1)
    }

    fn absorb(&mut self, objects: Vec<Object>, prefixes: Vec<String>) -> Flow {
        // Each list is sorted and together they cover one range of names: merge them.
        let mut names: Vec<(String, Option<Object>)> = objects
            .into_iter()
            .map(|object| (object.name.clone(), Some(object)))
            .chain(prefixes.into_iter().map(|prefix| (prefix, None)))
            .collect();
        names.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, object) in names {
            if self
                .floor
                .as_deref()
                .is_some_and(|floor| name.as_str() <= floor)
            {
                continue;
            }
            let Some(relative) = name.strip_prefix(self.root.as_str()) else {
                continue;
            };
            if is_internal(relative) {
                // Everything from here on is internal (or no key at all).
                return Flow::Stop;
            }
            let entry = match object {
                Some(object) => Key::new(relative)
                    .ok()
                    .map(|key| Entry::Object(object_meta(key, &object))),
                None => relative
                    .strip_suffix('/')
                    .is_some_and(|p| Key::new(p).is_ok())
                    .then(|| Entry::Prefix(relative.to_owned())),
            };
            self.floor = Some(name);
            // Names outside the key grammar (e.g. `dir/` placeholders) are not ours: skip them.
            if let Some(entry) = entry {
                self.entries.push(entry);
                if self.entries.len() > self.limit {
                    self.truncated = true;
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }

    fn finish(mut self) -> ListPage {
        let mut next = None;
        if self.truncated {
            self.entries.truncate(self.limit);
            next = self.entries.last().map(Entry::public_name);
        }
        let mut page = ListPage {
            next,
            ..ListPage::default()
        };
        for entry in self.entries {
            match entry {
                Entry::Object(meta) => page.objects.push(meta),
                Entry::Prefix(prefix) => page.prefixes.push(prefix),
            }
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> Object {
        Object {
            name: name.to_owned(),
            size: 1,
            generation: 7,
            ..Default::default()
        }
    }

    fn objects(names: &[&str]) -> Vec<Object> {
        names.iter().map(|n| object(n)).collect()
    }

    fn keys(page: &ListPage) -> Vec<&str> {
        page.objects.iter().map(|m| m.key.as_str()).collect()
    }

    #[test]
    fn start_after_is_exclusive_and_prefixes_merge_in_order() {
        let mut c = Collector::new("root/", Some("a-b"), 10);
        let flow = c.absorb(
            objects(&["root/a-b", "root/a.c", "root/a0"]),
            vec!["root/a/".to_owned()],
        );
        assert_eq!(flow, Flow::Continue);
        let page = c.finish();
        assert_eq!(keys(&page), ["a.c", "a0"]);
        assert_eq!(page.prefixes, ["a/"]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn limit_counts_objects_and_prefixes_and_sets_next() {
        let mut c = Collector::new("", None, 2);
        let flow = c.absorb(objects(&["a", "c"]), vec!["b/".to_owned(), "d/".to_owned()]);
        assert_eq!(flow, Flow::Stop);
        let page = c.finish();
        assert_eq!(keys(&page), ["a"]);
        assert_eq!(page.prefixes, ["b/"]);
        assert_eq!(page.next.as_deref(), Some("b/"));
    }

    #[test]
    fn internal_names_end_the_listing() {
        let mut c = Collector::new("p/", None, 1);
        let flow = c.absorb(
            objects(&["p/z", "p/~parts/0123/00001-x"]),
            vec!["p/~parts/".to_owned()],
        );
        assert_eq!(flow, Flow::Stop);
        let page = c.finish();
        assert_eq!(keys(&page), ["z"]);
        assert!(page.prefixes.is_empty());
        assert_eq!(page.next, None, "nothing but internal names follows");
    }

    #[test]
    fn invalid_names_and_repeated_prefixes_are_skipped() {
        let mut c = Collector::new("", None, 10);
        // A `dir/` placeholder, then a page that repeats the previous page's last prefix.
        c.absorb(objects(&["a", "a/"]), vec!["b/".to_owned()]);
        c.absorb(objects(&["c", "c//x"]), vec!["b/".to_owned()]);
        let page = c.finish();
        assert_eq!(keys(&page), ["a", "c"]);
        assert_eq!(page.prefixes, ["b/"]);
    }

    #[test]
    fn asks_for_one_more_than_it_still_needs() {
        let mut c = Collector::new("", None, 3);
        assert_eq!(c.wanted(), 4);
        c.absorb(objects(&["a", "b"]), Vec::new());
        assert_eq!(c.wanted(), 2);
        assert_eq!(Collector::new("", None, usize::MAX).wanted(), usize::MAX);
    }
}
