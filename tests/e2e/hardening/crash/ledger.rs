//! What each client got acknowledged (201), which is what the server must serve after any
//! number of crashes, and how often the crashes got in its way.

use std::collections::{BTreeMap, BTreeSet};

use oci_storage_tests::sha256;

use crate::protocol::pseudo_random;

/// A blob a client pushes, regenerated from its seed whenever its bytes are needed (so a
/// ledger of megabytes of layers stays small).
#[derive(Debug, Clone)]
pub struct Blob {
    pub seed: u64,
    pub len: usize,
    pub digest: String,
}

impl Blob {
    pub fn new(seed: u64, len: usize) -> Self {
        let digest = sha256(&pseudo_random(seed, len));
        Self { seed, len, digest }
    }

    pub fn bytes(&self) -> Vec<u8> {
        pseudo_random(self.seed, self.len)
    }
}

/// One client's ledger.
#[derive(Debug, Default)]
pub struct Outcome {
    pub repo: String,
    /// Acknowledged blobs (the config blob's bytes are kept, layers are regenerated).
    pub blobs: Vec<Blob>,
    pub configs: Vec<(String, Vec<u8>)>,
    /// Acknowledged manifests: digest → bytes.
    pub manifests: BTreeMap<String, Vec<u8>>,
    /// tag → digest of the last acknowledged manifest PUT to it.
    pub tags: BTreeMap<String, String>,
    pub images: usize,
    /// Requests a kill interrupted, by kind.
    pub interrupted: BTreeMap<&'static str, usize>,
    /// Chunked uploads continued after a crash, from the offset the server reported.
    pub resumed: usize,
    /// Uploads started over because their final PUT could not be repeated, by its answer:
    /// 409 (an interrupted PUT had claimed the session) or 404 (it had completed it).
    pub restarted: BTreeMap<u16, usize>,
}

impl Outcome {
    pub fn new(repo: String) -> Self {
        Self {
            repo,
            ..Self::default()
        }
    }

    pub fn interrupted(&mut self, kind: &'static str) {
        *self.interrupted.entry(kind).or_default() += 1;
    }

    /// Digests of every blob acknowledged, layers and configs.
    pub fn blob_digests(&self) -> impl Iterator<Item = &String> {
        let layers = self.blobs.iter().map(|b| &b.digest);
        layers.chain(self.configs.iter().map(|(digest, _)| digest))
    }
}

/// All clients' counts together, for the summary and the checks that the crashes did land.
#[derive(Debug, Default)]
pub struct Totals {
    pub images: usize,
    pub interrupted: BTreeMap<&'static str, usize>,
    pub resumed: usize,
    pub restarted: BTreeMap<u16, usize>,
}

impl Totals {
    pub fn of(outcomes: &[Outcome]) -> Self {
        let mut totals = Self::default();
        for out in outcomes {
            totals.images += out.images;
            totals.resumed += out.resumed;
            for (status, n) in &out.restarted {
                *totals.restarted.entry(*status).or_default() += n;
            }
            for (kind, n) in &out.interrupted {
                *totals.interrupted.entry(kind).or_default() += n;
            }
        }
        totals
    }
}

/// Every blob digest any client got acknowledged.
pub fn acknowledged_blobs(outcomes: &[Outcome]) -> BTreeSet<&String> {
    outcomes.iter().flat_map(Outcome::blob_digests).collect()
}
