//! Bounds the expensive part of a login, the password check (argon2id holds 19 MiB for the
//! length of a check, bcrypt a core): at most `running` checks at once, at most `queued` more
//! waiting, and at most [`PER_ADDRESS`] running or waiting for one client address. A caller
//! beyond that is told to come back later instead of being queued without bound. Used by
//! [`super::Access::basic`] for every credential check that the cache cannot answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Checks one client address may have running or waiting at once.
pub const PER_ADDRESS: usize = 4;

/// The gate.
#[derive(Debug)]
pub struct HashGate {
    running: Semaphore,
    /// Admitted checks (running or waiting) allowed in all.
    capacity: usize,
    admitted: Mutex<Admitted>,
}

#[derive(Debug, Default)]
struct Admitted {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A place among the admitted checks (running or waiting), given back when dropped, also
/// when the request is abandoned while it waits.
#[derive(Debug)]
pub struct Admission<'a> {
    gate: &'a HashGate,
    address: IpAddr,
}

/// The right to run one check now; dropping it lets the next one in.
#[derive(Debug)]
pub struct Pass<'a> {
    _admission: Admission<'a>,
    _permit: SemaphorePermit<'a>,
}

impl<'a> Admission<'a> {
    /// Waits for a free worker.
    pub async fn wait(self) -> Pass<'a> {
        let permit = self
            .gate
            .running
            .acquire()
            .await
            .expect("the gate's semaphore is never closed");
        Pass {
            _admission: self,
            _permit: permit,
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut admitted = self.gate.lock();
        admitted.total -= 1;
        if let Some(n) = admitted.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                admitted.by_address.remove(&self.address);
            }
        }
    }
}

impl HashGate {
    /// `running` checks at once (at least one), `queued` more waiting.
    pub fn new(running: usize, queued: usize) -> Self {
        let running = running.max(1);
        Self {
            running: Semaphore::new(running),
            capacity: running + queued,
            admitted: Mutex::default(),
        }
    }

    /// A place in line for a check for `address`; `None` when too many are running or
    /// waiting already, in all or for this address.
    pub fn admit(&self, address: IpAddr) -> Option<Admission<'_>> {
        let mut admitted = self.lock();
        let mine = admitted.by_address.get(&address).copied().unwrap_or(0);
        if admitted.total >= self.capacity || mine >= PER_ADDRESS {
            return None;
        }
        admitted.total += 1;
        *admitted.by_address.entry(address).or_default() += 1;
        Some(Admission {
            gate: self,
            address,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Admitted> {
        self.admitted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[tokio::test]
    async fn admits_running_plus_queued_and_limits_each_address() {
        let gate = HashGate::new(1, 5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = gate.admit(a).expect("room").wait().await;
        let mut waiting: Vec<_> = (1..PER_ADDRESS)
            .map(|_| Box::pin(gate.admit(a).expect("room for a").wait()))
            .collect();
        for w in &mut waiting {
            assert!(w.now_or_never().is_none(), "queued behind the worker");
        }
        assert!(gate.admit(a).is_none(), "address limit");
        let _other = gate.admit(b).expect("room for b");
        let more = gate.admit(b).expect("room for b");
        assert!(gate.admit(b).is_none(), "total capacity 6 reached");
        drop(more);
        assert!(gate.admit(b).is_some(), "an abandoned place is given back");
        drop(first);
        assert!(
            waiting.remove(0).now_or_never().is_some(),
            "the next in line runs"
        );
    }
}
