//! Brute-force protection: counts login attempts per client address and per username in a
//! fixed window. An attempt counts as a failure from the moment it starts (so concurrent
//! guesses are limited too) until it succeeds. Past the limit the client must wait (429 +
//! Retry-After) — except that a username keeps working from addresses where it logged in
//! successfully, so an attacker cannot lock a user out everywhere.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oci_storage_config::LoginLimits;

/// Entries kept before expired ones are pruned.
const PRUNE_AT: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
struct State {
    by_address: HashMap<IpAddr, Window>,
    by_user: HashMap<String, Window>,
    /// (user, address) pairs that logged in successfully, and when.
    trusted: HashMap<(String, IpAddr), Instant>,
}

/// The limiter.
#[derive(Debug)]
pub struct LoginLimiter {
    per_address: u32,
    per_user: u32,
    window: Duration,
    state: Mutex<State>,
}

impl LoginLimiter {
    pub fn new(limits: &LoginLimits) -> Self {
        Self {
            per_address: limits.per_address,
            per_user: limits.per_user,
            window: Duration::from_secs(limits.window_seconds.max(1)),
            state: Mutex::default(),
        }
    }

    /// How long the caller must wait before its login is checked, if it must.
    pub fn check(&self, address: IpAddr, user: &str) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.blocked(&state, address, user)
    }

    fn blocked(&self, state: &State, address: IpAddr, user: &str) -> Option<Duration> {
        let now = Instant::now();
        let blocked = |w: Option<&Window>, limit: u32| {
            w.filter(|w| w.failures >= limit && now.duration_since(w.start) < self.window)
                .map(|w| self.window.saturating_sub(now.duration_since(w.start)))
        };
        if let Some(wait) = blocked(state.by_address.get(&address), self.per_address) {
            return Some(wait);
        }
        let trusted = state
            .trusted
            .get(&(user.to_owned(), address))
            .is_some_and(|at| now.duration_since(*at) < self.window * 60);
        if trusted {
            return None;
        }
        blocked(state.by_user.get(user), self.per_user)
    }

    /// Starts a login attempt: refused (with the wait) past the limits, else counted as a
    /// failure until [`LoginLimiter::succeeded`] says otherwise.
    pub fn attempt(&self, address: IpAddr, user: &str) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = self.blocked(&state, address, user) {
            return Err(wait);
        }
        self.count_failure(&mut state, address, user);
        Ok(())
    }

    fn count_failure(&self, state: &mut State, address: IpAddr, user: &str) {
        let now = Instant::now();
        let window = self.window;
        let bump = |w: &mut Window| {
            if now.duration_since(w.start) >= window {
                *w = Window {
                    start: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        };
        let fresh = Window {
            start: now,
            failures: 0,
        };
        bump(state.by_address.entry(address).or_insert(fresh));
        bump(state.by_user.entry(user.to_owned()).or_insert(fresh));
        if state.by_address.len() + state.by_user.len() > PRUNE_AT {
            state
                .by_address
                .retain(|_, w| now.duration_since(w.start) < window);
            state
                .by_user
                .retain(|_, w| now.duration_since(w.start) < window);
        }
    }

    /// An attempt succeeded: it no longer counts, and the pair is trusted.
    pub fn succeeded(&self, address: IpAddr, user: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let window = self.window;
        let uncount = |w: Option<&mut Window>| {
            if let Some(w) = w.filter(|w| now.duration_since(w.start) < window) {
                w.failures = w.failures.saturating_sub(1);
            }
        };
        uncount(state.by_address.get_mut(&address));
        uncount(state.by_user.get_mut(user));
        if state.trusted.len() > PRUNE_AT {
            let keep = self.window * 60;
            state.trusted.retain(|_, at| at.elapsed() < keep);
        }
        state
            .trusted
            .insert((user.to_owned(), address), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(&LoginLimits {
            per_address: 3,
            per_user: 2,
            window_seconds: 60,
            ..LoginLimits::default()
        })
    }

    #[test]
    fn limits_addresses_and_users_but_not_trusted_pairs() {
        let l = limiter();
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let home: IpAddr = "10.0.0.2".parse().unwrap();
        l.succeeded(home, "alice");
        assert!(l.check(attacker, "alice").is_none());
        l.attempt(attacker, "alice").unwrap();
        l.attempt(attacker, "alice").unwrap();
        assert!(
            l.check(attacker, "alice").is_some(),
            "user limit from untrusted address"
        );
        assert!(
            l.check(home, "alice").is_none(),
            "alice still works from home"
        );
        assert!(
            l.check(attacker, "bob").is_none(),
            "other users unaffected below the address limit"
        );
        l.attempt(attacker, "bob").unwrap();
        let wait = l.check(attacker, "carol").expect("address limit");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(l.check(home, "carol").is_none());
    }

    #[test]
    fn attempts_count_from_their_start_until_they_succeed() {
        let l = limiter();
        let a: IpAddr = "10.0.0.3".parse().unwrap();
        for user in ["x", "y", "z"] {
            assert!(l.attempt(a, user).is_ok());
        }
        assert!(
            l.attempt(a, "w").is_err(),
            "three attempts in progress use up the address's allowance"
        );
        l.succeeded(a, "x");
        assert!(
            l.attempt(a, "w").is_ok(),
            "a success gives its attempt back"
        );
    }
}
