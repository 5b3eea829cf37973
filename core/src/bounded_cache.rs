//! Caches bounded by the bytes they hold, not by their number of entries: keys such as
//! repository names come from clients, so a count alone bounds nothing. Built on `quick_cache`
//! (S3-FIFO eviction, sharded); each entry weighs its keys' and values' bytes plus a fixed
//! overhead for the table slot and the headers of its strings.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::Digest;

/// What an entry costs beyond the bytes its parts report.
pub const ENTRY_OVERHEAD: u64 = 96;

/// The bytes a cached value holds beyond its fixed-size part (strings, buffers).
pub trait Footprint {
    fn footprint(&self) -> usize;
}

impl Footprint for String {
    fn footprint(&self) -> usize {
        self.len()
    }
}

impl Footprint for Bytes {
    fn footprint(&self) -> usize {
        self.len()
    }
}

impl Footprint for Digest {
    fn footprint(&self) -> usize {
        self.hex().len()
    }
}

impl Footprint for Instant {
    fn footprint(&self) -> usize {
        0
    }
}

impl Footprint for u64 {
    fn footprint(&self) -> usize {
        0
    }
}

/// Fixed-size keys such as hashes.
impl<const N: usize> Footprint for [u8; N] {
    fn footprint(&self) -> usize {
        0
    }
}

impl<T: Footprint> Footprint for Vec<T> {
    fn footprint(&self) -> usize {
        self.iter()
            .map(|t| t.footprint() + std::mem::size_of::<T>())
            .sum()
    }
}

impl<T: Footprint> Footprint for Option<T> {
    fn footprint(&self) -> usize {
        self.as_ref().map_or(0, Footprint::footprint)
    }
}

impl<T: Footprint> Footprint for Arc<T> {
    fn footprint(&self) -> usize {
        self.as_ref().footprint()
    }
}

impl<A: Footprint, B: Footprint> Footprint for (A, B) {
    fn footprint(&self) -> usize {
        self.0.footprint() + self.1.footprint()
    }
}

impl<A: Footprint, B: Footprint, C: Footprint> Footprint for (A, B, C) {
    fn footprint(&self) -> usize {
        self.0.footprint() + self.1.footprint() + self.2.footprint()
    }
}

/// Weighs an entry by [`Footprint`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ByFootprint;

impl<K: Footprint, V: Footprint> quick_cache::Weighter<K, V> for ByFootprint {
    fn weight(&self, key: &K, value: &V) -> u64 {
        (key.footprint() + value.footprint()) as u64 + ENTRY_OVERHEAD
    }
}

/// A concurrent cache holding at most about `bytes` (see [`bounded_cache`]).
pub type BoundedCache<K, V> = quick_cache::sync::Cache<K, V, ByFootprint>;

/// How a cache is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharding {
    /// Many small entries read from many threads: shards avoid contention.
    Sharded,
    /// Few large entries: one shard, so that a single entry may use the whole budget
    /// (shards split it, and an entry heavier than its shard is not kept).
    OneShard,
}

/// A cache of at most `bytes`, sized for entries of about `typical_entry` bytes.
pub fn bounded_cache<K, V>(bytes: u64, typical_entry: u64, sharding: Sharding) -> BoundedCache<K, V>
where
    K: Eq + std::hash::Hash + Clone + Footprint,
    V: Clone + Footprint,
{
    let mut options = quick_cache::OptionsBuilder::new();
    options
        .estimated_items_capacity((bytes / typical_entry.max(1)).max(1) as usize)
        .weight_capacity(bytes);
    if sharding == Sharding::OneShard {
        options.shards(1);
    }
    quick_cache::sync::Cache::with_options(
        options.build().expect("capacities are set"),
        ByFootprint,
        Default::default(),
        Default::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_held_stay_within_the_budget_whatever_the_keys() {
        let cache: BoundedCache<(String, String), Instant> =
            bounded_cache(64 * 1024, 128, Sharding::Sharded);
        let long = "x".repeat(2000);
        for i in 0..1000 {
            cache.insert((format!("{long}{i}"), long.clone()), Instant::now());
        }
        assert!(cache.weight() <= 64 * 1024, "{}", cache.weight());
        assert!(!cache.is_empty());
    }

    #[test]
    fn one_shard_keeps_an_entry_as_large_as_the_budget_allows() {
        let cache: BoundedCache<String, Bytes> =
            bounded_cache(1 << 20, 1 << 18, Sharding::OneShard);
        cache.insert("big".into(), Bytes::from(vec![0; 900 * 1024]));
        assert!(cache.get("big").is_some());
    }
}
