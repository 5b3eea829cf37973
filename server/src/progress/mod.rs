//! Live counters of a long job (backup, restore, verify, garbage collection, scrub), shared
//! by the job and whatever shows it: a web page's poll, the REST API, the command line's
//! progress line (`line`).

pub mod line;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Done of total; `total` is unknown until the job has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub done: u64,
    pub total: Option<u64>,
}

/// Live counters of a running job, shared with whatever shows it.
#[derive(Debug)]
pub struct Progress {
    phase: Mutex<&'static str>,
    objects_done: AtomicU64,
    objects_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    /// (when, bytes done) samples for the rate.
    samples: Mutex<std::collections::VecDeque<(Instant, u64)>>,
}

const UNKNOWN: u64 = u64::MAX;
const RATE_WINDOW: Duration = Duration::from_secs(10);

impl Default for Progress {
    fn default() -> Self {
        Self {
            phase: Mutex::new("starting"),
            objects_done: AtomicU64::new(0),
            objects_total: AtomicU64::new(UNKNOWN),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(UNKNOWN),
            samples: Mutex::default(),
        }
    }
}

/// A snapshot of [`Progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressView {
    pub phase: &'static str,
    pub objects: Count,
    pub bytes: Count,
    pub bytes_per_second: Option<u64>,
    pub eta_seconds: Option<u64>,
}

impl Progress {
    pub fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    /// Starts counting a new total (the phase's work).
    pub fn set_totals(&self, objects: u64, bytes: u64) {
        self.objects_done.store(0, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        self.objects_total.store(objects, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_object(&self) {
        self.objects_done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn view(&self) -> ProgressView {
        let known = |v: u64| (v != UNKNOWN).then_some(v);
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let bytes_total = known(self.bytes_total.load(Ordering::Relaxed));
        let now = Instant::now();
        let rate = {
            let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            samples.push_back((now, bytes_done));
            while samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                samples.pop_front();
            }
            samples.front().and_then(|(t, b)| {
                let secs = now.duration_since(*t).as_secs_f64();
                // Saturating: a new phase may have reset the counter since this sample.
                (secs >= 0.5).then(|| (bytes_done.saturating_sub(*b) as f64 / secs) as u64)
            })
        };
        let eta = match (bytes_total, rate) {
            (Some(total), Some(rate)) if rate > 0 => Some(total.saturating_sub(bytes_done) / rate),
            _ => None,
        };
        ProgressView {
            phase: *self.phase.lock().unwrap_or_else(|p| p.into_inner()),
            objects: Count {
                done: self.objects_done.load(Ordering::Relaxed),
                total: known(self.objects_total.load(Ordering::Relaxed)),
            },
            bytes: Count {
                done: bytes_done,
                total: bytes_total,
            },
            bytes_per_second: rate,
            eta_seconds: eta,
        }
    }
}
