//! The storage layout: every key the registry reads or writes is built here, and nowhere else.
//!
//! ```text
//! blobs/<alg>/<hex>                                  content, once for the whole registry
//! repositories/<repo>/_blobs/<alg>/<hex>             the repo may serve this blob (empty)
//! repositories/<repo>/_manifests/<alg>/<hex>         manifest revision (JSON ManifestLink)
//! repositories/<repo>/_tags/<tag>                    tag → manifest (JSON ManifestLink)
//! repositories/<repo>/_referrers/<alg>/<hex>/<alg>-<hex>   subject → referrer descriptor
//! repository-names/<encoded repo>!                   the repo exists (for _catalog)
//! uploads/<id>/state.json, uploads/<id>/data         upload sessions
//! trash/<run>/<key>                                  what garbage collection run <run> took
//!                                                    away, restorable until it is emptied
//! system/…                                           registry-wide state (initial admin, token key,
//!                                                    API tokens, backup lease and jobs)
//! ```
//! Repository components start with `[a-z0-9]`, so the `_`-prefixed keys of a repository never
//! collide with a nested repository. A catalog key is one segment: the name with `-` `.` `/`
//! written as `,` `-` `.` (the same relative order, all below `0`) and a final `!`, which
//! sorts before every character. So the catalog lists in the names' lexical order on every
//! backend, whether it orders keys byte-wise or segment by segment (see `Storage::list`).
//! (Before, the catalog was `catalog/<repo>!`, nested; `migrate_legacy_catalog` moves it.)

use oci_storage_core::{Digest, Key};

use super::names::{RepoName, Tag};

fn key(s: String) -> Key {
    Key::new(s).expect("layout keys are built from validated parts")
}

pub fn blob(d: &Digest) -> Key {
    key(format!("blobs/{}/{}", d.algorithm().as_str(), d.hex()))
}

pub fn blob_link(repo: &RepoName, d: &Digest) -> Key {
    key(format!(
        "repositories/{repo}/_blobs/{}/{}",
        d.algorithm().as_str(),
        d.hex()
    ))
}

pub fn manifest_link(repo: &RepoName, d: &Digest) -> Key {
    key(format!(
        "repositories/{repo}/_manifests/{}/{}",
        d.algorithm().as_str(),
        d.hex()
    ))
}

pub fn manifests_prefix(repo: &RepoName) -> String {
    format!("repositories/{repo}/_manifests/")
}

pub fn blob_links_prefix(repo: &RepoName) -> String {
    format!("repositories/{repo}/_blobs/")
}

pub const BLOBS_PREFIX: &str = "blobs/";

/// The digest named by a key ending in `<alg>/<hex>` under `prefix` (blobs, links).
pub fn digest_under(key: &str, prefix: &str) -> Option<Digest> {
    let (alg, hex) = key.strip_prefix(prefix)?.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

pub fn tags_prefix(repo: &RepoName) -> String {
    format!("repositories/{repo}/_tags/")
}

pub fn tag(repo: &RepoName, tag: &Tag) -> Key {
    key(format!("{}{tag}", tags_prefix(repo)))
}

pub fn referrers_prefix(repo: &RepoName, subject: &Digest) -> String {
    format!(
        "repositories/{repo}/_referrers/{}/{}/",
        subject.algorithm().as_str(),
        subject.hex()
    )
}

pub fn referrer(repo: &RepoName, subject: &Digest, referrer: &Digest) -> Key {
    key(format!(
        "{}{}-{}",
        referrers_prefix(repo, subject),
        referrer.algorithm().as_str(),
        referrer.hex()
    ))
}

pub const CATALOG_PREFIX: &str = "repository-names/";
/// The nested catalog of earlier versions.
pub const LEGACY_CATALOG_PREFIX: &str = "catalog/";

/// Maps a name (or a `last=` cursor) into one key segment, keeping the order.
fn encode_catalog_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' => ',',
            '.' => '-',
            '/' => '.',
            other => other,
        })
        .collect()
}

pub fn catalog_entry(repo: &RepoName) -> Key {
    key(catalog_cursor(repo.as_str()))
}

/// The key a catalog listing continues after, for a `last=` name (any string).
pub fn catalog_cursor(name: &str) -> String {
    format!("{CATALOG_PREFIX}{}!", encode_catalog_name(name))
}

/// The repository name of a catalog key, if it is one.
pub fn catalog_name(key: &str) -> Option<String> {
    let encoded = key.strip_prefix(CATALOG_PREFIX)?.strip_suffix('!')?;
    Some(
        encoded
            .chars()
            .map(|c| match c {
                ',' => '-',
                '-' => '.',
                '.' => '/',
                other => other,
            })
            .collect(),
    )
}

/// The repository name of a legacy (nested) catalog key.
pub fn legacy_catalog_name(key: &str) -> Option<&str> {
    key.strip_prefix(LEGACY_CATALOG_PREFIX)?.strip_suffix('!')
}

pub const UPLOADS_PREFIX: &str = "uploads/";

pub const TRASH_PREFIX: &str = "trash/";

/// Where garbage collection run `run` keeps `original` until its trash is emptied.
pub fn trashed(run: &str, original: &Key) -> Key {
    key(format!("{TRASH_PREFIX}{run}/{original}"))
}

/// The prefix of run `run`'s trash.
pub fn trash_of(run: &str) -> String {
    format!("{TRASH_PREFIX}{run}/")
}

pub fn upload_state(id: &str) -> Key {
    key(format!("{UPLOADS_PREFIX}{id}/state.json"))
}

pub fn upload_data(id: &str) -> Key {
    key(format!("{UPLOADS_PREFIX}{id}/data"))
}

pub fn initial_admin() -> Key {
    key("system/initial-admin.json".to_owned())
}

pub fn token_signing_key() -> Key {
    key("system/token-signing-key.json".to_owned())
}

/// The claims of scheduled garbage collection slots (see `schedule`).
pub fn gc_schedule() -> Key {
    key("system/gc/schedule.json".to_owned())
}

pub const GC_RUNS_PREFIX: &str = "system/gc/runs/";

/// The record of garbage collection run `id` (see `gc::service`).
pub fn gc_run(id: &str) -> Key {
    key(format!("{GC_RUNS_PREFIX}{id}.json"))
}

/// The claims of scheduled scrub slots (see `scrub`).
pub fn scrub_schedule() -> Key {
    key("system/scrub/schedule.json".to_owned())
}

/// This registry's id, which marks the backup target it writes to (see `backup`).
pub fn registry_id() -> Key {
    key("system/registry-id.json".to_owned())
}

/// Who runs the one maintenance job (backup, restore, verify, garbage collection) at a time
/// (see `lease`).
pub fn job_lease() -> Key {
    key("system/backup/lease.json".to_owned())
}

/// The last scheduled backup slot claimed, and by whom (see `backup::schedule`).
pub fn backup_schedule() -> Key {
    key("system/backup/schedule.json".to_owned())
}

pub const BACKUP_JOBS_PREFIX: &str = "system/backup/jobs/";

/// A backup job's progress and outcome; `id` is checked by the caller (`backup::format`).
pub fn backup_job(id: &str) -> Key {
    key(format!("{BACKUP_JOBS_PREFIX}{id}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_order_is_name_order() {
        let mut names = vec!["a", "a-b", "a.b", "a/b", "a0", "a/b/c", "ab"];
        let mut keys: Vec<String> = names
            .iter()
            .map(|n| catalog_entry(&RepoName::parse(n).unwrap()).to_string())
            .collect();
        names.sort();
        keys.sort();
        let from_keys: Vec<String> = keys.iter().map(|k| catalog_name(k).unwrap()).collect();
        assert_eq!(from_keys, names);
        // One segment each, so segment-wise ordering stores agree.
        assert!(keys.iter().all(|k| k.matches('/').count() == 1), "{keys:?}");
    }
}
