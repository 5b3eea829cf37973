//! Per-upstream bookkeeping: statistics (hits, misses, bytes, coalesced waiters, errors), a
//! circuit breaker (after repeated failures the upstream is not contacted for a while, so
//! cached content is served at once instead of after timeouts), and briefly cached 404s.

use oci_storage_core::bounded_cache::{BoundedCache, Sharding, bounded_cache};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive failures that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// How long an open circuit keeps the upstream out of reach.
const OPEN_FOR: Duration = Duration::from_secs(30);
/// How long a 404 from upstream is remembered.
const NOT_FOUND_FOR: Duration = Duration::from_secs(30);

/// Counters of one upstream.
#[derive(Debug, Default)]
pub struct Stats {
    pub manifest_hits: AtomicU64,
    pub manifest_misses: AtomicU64,
    pub blob_hits: AtomicU64,
    pub blob_misses: AtomicU64,
    pub bytes_from_upstream: AtomicU64,
    pub bytes_from_cache: AtomicU64,
    pub coalesced_waiters: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub stale_served: AtomicU64,
    pub evictions: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// Bytes of remembered "not found" answers: names come from clients, so bounded by bytes.
const NOT_FOUND_BYTES: u64 = 2 * 1024 * 1024;

/// Health and statistics of every upstream.
#[derive(Debug)]
pub struct Health {
    stats: Mutex<HashMap<String, std::sync::Arc<Stats>>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    /// Until when (upstream, repository, reference) is known not to exist.
    not_found: BoundedCache<(String, String, String), Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            stats: Mutex::default(),
            breakers: Mutex::default(),
            not_found: bounded_cache(NOT_FOUND_BYTES, 256, Sharding::Sharded),
        }
    }
}

impl Health {
    pub fn stats(&self, upstream: &str) -> std::sync::Arc<Stats> {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.entry(upstream.to_owned()).or_default().clone()
    }

    /// Whether the circuit of this upstream is open (do not contact it now).
    pub fn is_open(&self, upstream: &str) -> bool {
        let breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers
            .get(upstream)
            .and_then(|b| b.open_until)
            .is_some_and(|until| until > Instant::now())
    }

    pub fn succeeded(&self, upstream: &str) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers.insert(upstream.to_owned(), Breaker::default());
    }

    pub fn failed(&self, upstream: &str) {
        Stats::add(&self.stats(upstream).upstream_errors, 1);
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let breaker = breakers.entry(upstream.to_owned()).or_default();
        breaker.failures += 1;
        if breaker.failures >= FAILURES_TO_OPEN {
            if breaker.open_until.is_none_or(|u| u <= Instant::now()) {
                tracing::warn!(
                    upstream,
                    "upstream failing: serving from cache only for {} s",
                    OPEN_FOR.as_secs()
                );
            }
            breaker.open_until = Some(Instant::now() + OPEN_FOR);
        }
    }

    pub fn remember_not_found(&self, upstream: &str, repo: &str, reference: &str) {
        self.not_found.insert(
            (upstream.to_owned(), repo.to_owned(), reference.to_owned()),
            Instant::now() + NOT_FOUND_FOR,
        );
    }

    pub fn known_not_found(&self, upstream: &str, repo: &str, reference: &str) -> bool {
        self.not_found
            .get(&(upstream.to_owned(), repo.to_owned(), reference.to_owned()))
            .is_some_and(|until| until > Instant::now())
    }
}
