//! Who may call the registry: HTTP Basic credentials checked by the configured
//! [`Authenticator`], with successful checks cached briefly (clients send credentials on every
//! request), and the rule that pulls may be anonymous while pushes and deletes need a login.
//! Finer permissions (per repository, tokens) build on [`Access::authorize`].

pub mod initial_admin;
pub mod limiter;
pub mod password;
pub mod policy;
pub mod users;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use oci_storage_core::{Authenticator, Credentials, Identity, Secret};
use sha2::{Digest as _, Sha256};

use limiter::LoginLimiter;
use policy::Policy;

/// How long a successful credential check is trusted.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most cached successful checks.
const CACHE_MAX: usize = 10_000;
/// The challenge sent with 401 answers.
pub const CHALLENGE: &str = r#"Basic realm="oci-storage""#;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

/// Why a request may not proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No or wrong credentials: answer 401 with [`CHALLENGE`].
    Unauthenticated,
    /// Known caller, not allowed: answer 403.
    Denied,
    /// Too many failed logins: answer 429 with Retry-After.
    TooManyRequests(Duration),
    /// The authentication backend failed: answer 503.
    Unavailable,
}

/// The access gate: authentication (with a cache and brute-force limits) and authorization.
#[derive(Debug)]
pub struct Access {
    authenticators: Vec<Arc<dyn Authenticator>>,
    policy: Policy,
    limiter: LoginLimiter,
    /// sha256(username NUL password) → identity and expiry; never the password itself.
    cache: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

impl Access {
    /// `authenticators` are asked in order; the first that knows the credentials wins.
    pub fn new(
        authenticators: Vec<Arc<dyn Authenticator>>,
        policy: Policy,
        limiter: LoginLimiter,
    ) -> Self {
        Self {
            authenticators,
            policy,
            limiter,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Identifies the caller from an `Authorization` header; `Ok(None)` when there is none.
    pub async fn identify(
        &self,
        authorization: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Option<Identity>, Denial> {
        let Some(header) = authorization else {
            return Ok(None);
        };
        let credentials = parse_basic(header).ok_or(Denial::Unauthenticated)?;
        // Limits first, even for cached credentials: a blocked client must not learn that a
        // guess was right.
        let client = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if let Some(wait) = self.limiter.check(client, &credentials.username) {
            tracing::warn!(client = %client, "login refused: too many failed attempts");
            return Err(Denial::TooManyRequests(wait));
        }
        let fingerprint = fingerprint(&credentials);
        if let Some(identity) = self.cached(&fingerprint) {
            return Ok(Some(identity));
        }
        for authenticator in &self.authenticators {
            match authenticator.authenticate(&credentials).await {
                Ok(Some(mut identity)) => {
                    self.policy.add_memberships(&mut identity);
                    self.limiter.succeeded(client, &credentials.username);
                    self.remember(fingerprint, identity.clone());
                    return Ok(Some(identity));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "authentication backend failed");
                    return Err(Denial::Unavailable);
                }
            }
        }
        self.limiter.failed(client, &credentials.username);
        tracing::info!(client = %client, "authentication failed");
        Err(Denial::Unauthenticated)
    }

    /// Whether `who` may perform `action` on `repository` (`None`: the registry itself, as
    /// for `/v2/` and `_catalog`).
    pub fn authorize(
        &self,
        who: Option<&Identity>,
        repository: Option<&str>,
        action: Action,
    ) -> Result<(), Denial> {
        let allowed = match repository {
            Some(repo) => self.policy.allows(who, repo, action),
            None => who.is_some() || self.policy.anonymous_may_pull_somewhere(),
        };
        match (allowed, who) {
            (true, _) => Ok(()),
            (false, None) => Err(Denial::Unauthenticated),
            (false, Some(_)) => Err(Denial::Denied),
        }
    }

    /// Whether `who` may pull `repository` (for filtering listings).
    pub fn may_pull(&self, who: Option<&Identity>, repository: &str) -> bool {
        self.policy.allows(who, repository, Action::Pull)
    }

    fn cached(&self, fingerprint: &[u8; 32]) -> Option<Identity> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(fingerprint)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(identity, _)| identity.clone())
    }

    fn remember(&self, fingerprint: [u8; 32], identity: Identity) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, expires)| *expires > now);
        }
        if cache.len() < CACHE_MAX {
            cache.insert(fingerprint, (identity, now + CACHE_TTL));
        }
    }
}

fn fingerprint(c: &Credentials) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(c.username.as_bytes());
    h.update([0]);
    h.update(c.password.expose().as_bytes());
    h.finalize().into()
}

/// Parses `Basic base64(user:password)`.
fn parse_basic(header: &str) -> Option<Credentials> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        let c = parse_basic("Basic dXNlcjpwYTpzcw==").unwrap();
        assert_eq!(c.username, "user");
        assert_eq!(c.password.expose(), "pa:ss");
        assert!(parse_basic("Bearer x").is_none());
        assert!(parse_basic("Basic !!!").is_none());
    }
}
