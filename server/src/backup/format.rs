//! What a backup target holds, and the documents in it (docs/design/backup.md §1.2):
//!
//! ```text
//! oci-storage-backup.json   {"format":"oci-storage-backup","version":1}: written once
//! blobs/<alg>/<hex>         registry content byte for byte, shared by every snapshot
//! meta/<alg>/<hex>          repository and system documents, content-addressed, shared
//! snapshots/<id>.json       the snapshot record, written last and create-only: it exists
//!                           only once everything it names is in the target
//! ```
//! Documents serialise from ordered maps, so an unchanged repository gives the same bytes, the
//! same digest, and costs nothing the next time.

use std::collections::BTreeMap;

use oci_storage_core::{Digest, DigestAlgorithm, Key};
use serde::{Deserialize, Serialize};

use crate::registry::ManifestLink;

pub const FORMAT: &str = "oci-storage-backup";
/// The format version this build writes and the newest it reads.
pub const VERSION: u32 = 1;

pub const BLOBS_PREFIX: &str = "blobs/";
pub const META_PREFIX: &str = "meta/";
pub const SNAPSHOTS_PREFIX: &str = "snapshots/";

/// Largest snapshot record or document read back (a repository with 100,000 tags is ~20 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

fn key(s: String) -> Key {
    Key::new(s).expect("backup keys are built from validated parts")
}

pub fn marker() -> Key {
    key("oci-storage-backup.json".into())
}

pub fn blob(d: &Digest) -> Key {
    key(format!(
        "{BLOBS_PREFIX}{}/{}",
        d.algorithm().as_str(),
        d.hex()
    ))
}

pub fn meta(d: &Digest) -> Key {
    key(format!(
        "{META_PREFIX}{}/{}",
        d.algorithm().as_str(),
        d.hex()
    ))
}

pub fn snapshot(id: &SnapshotId) -> Key {
    key(format!("{SNAPSHOTS_PREFIX}{}.json", id.0))
}

/// The digest an object path under `blobs/` or `meta/` names.
pub fn digest_of(path: &str) -> Option<Digest> {
    let rest = path
        .strip_prefix(BLOBS_PREFIX)
        .or_else(|| path.strip_prefix(META_PREFIX))?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// `{"format":…,"version":…,"registry":…}`: the marker, and the head of every record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub format: String,
    pub version: u32,
    /// The id of the registry whose backups the target holds (only that one writes to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

impl Marker {
    pub fn current() -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            registry: None,
        }
    }

    /// Whether this build can read what the marker describes.
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "the target holds {:?}, not an oci-storage backup",
                self.format
            ));
        }
        if self.version > VERSION {
            return Err(format!(
                "the target holds backups of format version {}; this version of oci-storage reads up to {VERSION}",
                self.version
            ));
        }
        Ok(())
    }
}

/// A snapshot's and job's id: its start time (UTC, to the millisecond) and 24 random bits, so
/// ids sort by time (jobs run one at a time, so their start times differ) and two replicas
/// starting at once do not collide: `20261201T030000.000Z-3f2a9c`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotId(String);

impl SnapshotId {
    pub fn new(at: chrono::DateTime<chrono::Utc>) -> Self {
        Self(format!(
            "{}-{:06x}",
            at.format("%Y%m%dT%H%M%S%.3fZ"),
            rand::random::<u32>() & 0xff_ffff
        ))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (time, random) = s.split_once('-')?;
        let valid = time.len() == 20
            && chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%S%.3fZ").is_ok()
            && random.len() == 6
            && random
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        valid.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the job started.
    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::NaiveDateTime::parse_from_str(&self.0[..20], "%Y%m%dT%H%M%S%.3fZ")
            .expect("checked when the id was made")
            .and_utc()
    }

    /// The id a record path names.
    pub fn of_record(path: &str) -> Option<Self> {
        Self::parse(path.strip_prefix(SNAPSHOTS_PREFIX)?.strip_suffix(".json")?)
    }
}

impl TryFrom<String> for SnapshotId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("{s:?} is not a snapshot id"))
    }
}

impl From<SnapshotId> for String {
    fn from(id: SnapshotId) -> String {
        id.0
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A manifest in a repository document: enough to write its revision link and to order a
/// restore (children before the index that lists them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub media_type: String,
    pub size: u64,
    /// Blobs and child manifests it references.
    pub refs: Vec<Digest>,
}

/// A chart version's own data that cannot be derived from its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartEntry {
    /// RFC 3339, as `index.yaml` shows it.
    pub created: String,
}

/// One repository as the cut saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryDoc {
    pub kind: String,
    pub version: u32,
    pub name: String,
    pub tags: BTreeMap<String, ManifestLink>,
    pub manifests: BTreeMap<Digest, ManifestEntry>,
    /// Blob digest → size.
    pub blobs: BTreeMap<Digest, u64>,
    #[serde(default)]
    pub charts: BTreeMap<String, ChartEntry>,
}

impl RepositoryDoc {
    pub const KIND: &str = "repository";

    /// Every content object the repository needs (blobs and manifests), with sizes.
    pub fn content(&self) -> impl Iterator<Item = (&Digest, u64)> {
        self.blobs
            .iter()
            .map(|(d, s)| (d, *s))
            .chain(self.manifests.iter().map(|(d, m)| (d, m.size)))
    }

    /// Manifests in an order that puts every child before the indexes that list it.
    pub fn manifests_children_first(&self) -> Vec<(&Digest, &ManifestEntry)> {
        let mut placed: std::collections::BTreeSet<&Digest> = Default::default();
        let mut order = Vec::with_capacity(self.manifests.len());
        while order.len() < self.manifests.len() {
            let before = order.len();
            for (d, m) in &self.manifests {
                let ready = m
                    .refs
                    .iter()
                    .all(|r| !self.manifests.contains_key(r) || placed.contains(r) || r == d);
                if !placed.contains(d) && ready {
                    placed.insert(d);
                    order.push((d, m));
                }
            }
            if order.len() == before {
                // A cycle cannot be pushed; if one is here anyway, write the rest as listed.
                order.extend(self.manifests.iter().filter(|(d, _)| !placed.contains(d)));
                break;
            }
        }
        order
    }
}

/// Registry-wide records kept in a snapshot (see ARCHITECTURE.md, Backups: API-token records
/// and the initial admin's hash are kept; the token signing key and the session key are not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemDoc {
    pub kind: String,
    pub version: u32,
    /// Record file name (`<id>.json`) → the record as stored.
    pub api_tokens: BTreeMap<String, serde_json::Value>,
    pub initial_admin: Option<serde_json::Value>,
}

impl SystemDoc {
    pub const KIND: &str = "system";
}

/// A repository in a snapshot record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryEntry {
    pub name: String,
    pub doc: Digest,
    pub tags: usize,
    pub manifests: usize,
    pub blobs: usize,
    /// Bytes of content (blobs and manifests) the repository needs.
    pub bytes: u64,
}

/// Totals of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Distinct content objects the snapshot names.
    pub objects: u64,
    pub bytes: u64,
    /// What this run uploaded (content and documents).
    pub new_objects: u64,
    pub new_bytes: u64,
}

/// `snapshots/<id>.json`: a complete snapshot. Readers ignore fields they do not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    pub format: String,
    pub version: u32,
    pub id: SnapshotId,
    pub started_at: String,
    pub cut_started_at: String,
    pub cut_ended_at: String,
    pub completed_at: String,
    /// A user, `schedule`, or `cli:<user>@<host>`.
    pub started_by: String,
    /// The registry storage it was taken from.
    pub source: String,
    pub registry_version: String,
    /// The id of the registry it was taken from (a fresh registry restored from it adopts it).
    #[serde(default)]
    pub registry: Option<String>,
    pub repositories: Vec<RepositoryEntry>,
    pub system: Digest,
    pub totals: Totals,
}

impl SnapshotRecord {
    pub fn marker(&self) -> Marker {
        Marker {
            format: self.format.clone(),
            version: self.version,
            registry: self.registry.clone(),
        }
    }
}

/// A document's bytes and digest.
pub fn encode<T: Serialize>(doc: &T) -> (bytes::Bytes, Digest) {
    let bytes = serde_json::to_vec(doc).expect("documents serialize");
    let digest = DigestAlgorithm::Sha256.digest(&bytes);
    (bytes.into(), digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        DigestAlgorithm::Sha256.digest(&[n])
    }

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let early = SnapshotId::new("2026-12-01T03:00:00.998Z".parse().unwrap());
        let late = SnapshotId::new("2026-12-01T03:00:00.999Z".parse().unwrap());
        assert!(early < late);
        assert!(early.as_str().starts_with("20261201T030000.998Z-"));
        assert_eq!(SnapshotId::parse(early.as_str()), Some(early.clone()));
        assert_eq!(
            SnapshotId::of_record(snapshot(&early).as_str()),
            Some(early)
        );
        for bad in [
            "",
            "latest",
            "20261201T030000.000Z",
            "20261201T030000Z-abcdef",
            "20261301T030000.000Z-abcdef",
            "20261201T030000.000Z-ABCDEF",
            "../x",
        ] {
            assert_eq!(SnapshotId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn documents_are_deterministic() {
        let mut a = RepositoryDoc {
            kind: RepositoryDoc::KIND.into(),
            version: VERSION,
            name: "r".into(),
            tags: BTreeMap::new(),
            manifests: BTreeMap::new(),
            blobs: BTreeMap::new(),
            charts: BTreeMap::new(),
        };
        let mut b = a.clone();
        for n in 0..20 {
            a.blobs.insert(d(n), n.into());
        }
        for n in (0..20).rev() {
            b.blobs.insert(d(n), n.into());
        }
        assert_eq!(encode(&a).1, encode(&b).1);
        assert_eq!(digest_of(blob(&d(1)).as_str()), Some(d(1)));
        assert_eq!(digest_of(meta(&d(2)).as_str()), Some(d(2)));
    }

    #[test]
    fn children_come_before_their_index() {
        let entry = |refs: Vec<Digest>| ManifestEntry {
            media_type: "m".into(),
            size: 1,
            refs,
        };
        let mut manifests = BTreeMap::new();
        // An index of indexes of manifests, whatever the digests' order.
        manifests.insert(d(1), entry(vec![d(2)]));
        manifests.insert(d(2), entry(vec![d(3), d(4)]));
        manifests.insert(d(3), entry(vec![d(9)]));
        manifests.insert(d(4), entry(vec![]));
        let doc = RepositoryDoc {
            kind: RepositoryDoc::KIND.into(),
            version: VERSION,
            name: "r".into(),
            tags: BTreeMap::new(),
            manifests,
            blobs: BTreeMap::new(),
            charts: BTreeMap::new(),
        };
        let order: Vec<&Digest> = doc
            .manifests_children_first()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let pos = |x: &Digest| order.iter().position(|o| *o == x).unwrap();
        assert_eq!(order.len(), 4);
        assert!(pos(&d(3)) < pos(&d(2)) && pos(&d(4)) < pos(&d(2)) && pos(&d(2)) < pos(&d(1)));
    }
}
