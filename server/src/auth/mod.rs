//! Who may call the registry: HTTP Basic credentials checked by the configured
//! [`Authenticator`], with successful checks cached briefly (clients send credentials on every
//! request), and the rule that pulls may be anonymous while pushes and deletes need a login.
//! Finer permissions (per repository, tokens) build on [`Access::authorize`].

pub mod initial_admin;
pub mod limiter;
pub mod password;
pub mod policy;
pub mod token;
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
use token::{Claims, TokenService};

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

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    /// Authenticated with credentials.
    User(Identity),
    /// Presented a token from the token service (`identity` is `None` for anonymous tokens).
    Token {
        claims: Claims,
        identity: Option<Identity>,
    },
}

impl Caller {
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Self::Anonymous => None,
            Self::User(identity) => Some(identity),
            Self::Token { identity, .. } => identity.as_ref(),
        }
    }
}

/// The access gate: authentication (with a cache and brute-force limits) and authorization.
#[derive(Debug)]
pub struct Access {
    authenticators: Vec<Arc<dyn Authenticator>>,
    tokens: Option<Arc<TokenService>>,
    policy: Policy,
    limiter: LoginLimiter,
    /// sha256(username NUL password) → identity and expiry; never the password itself.
    cache: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

impl Access {
    /// `authenticators` are asked in order; the first that knows the credentials wins.
    pub fn new(
        authenticators: Vec<Arc<dyn Authenticator>>,
        tokens: Option<Arc<TokenService>>,
        policy: Policy,
        limiter: LoginLimiter,
    ) -> Self {
        Self {
            authenticators,
            tokens,
            policy,
            limiter,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Identifies the caller from an `Authorization` header (Basic credentials, or a bearer
    /// token from the token service when it is enabled).
    pub async fn identify(
        &self,
        authorization: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Caller, Denial> {
        let Some(header) = authorization else {
            return Ok(Caller::Anonymous);
        };
        if let Some(token) = bearer(header) {
            let claims = self
                .tokens
                .as_ref()
                .and_then(|service| service.verify(token))
                .ok_or(Denial::Unauthenticated)?;
            let identity = claims.identity();
            return Ok(Caller::Token { claims, identity });
        }
        Ok(match self.basic(header, client).await? {
            Some(identity) => Caller::User(identity),
            None => Caller::Anonymous,
        })
    }

    /// Checks HTTP Basic credentials (with the cache and the login limits).
    pub async fn basic(
        &self,
        header: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<Identity>, Denial> {
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

    /// Whether the caller may perform `action` on `repository` (`None`: the registry itself,
    /// as for `/v2/` and `_catalog`). A token allows exactly what it grants.
    pub fn authorize(
        &self,
        caller: &Caller,
        repository: Option<&str>,
        action: Action,
    ) -> Result<(), Denial> {
        let allowed = match (caller, repository) {
            (Caller::Token { claims, .. }, Some(repo)) => claims.allows(repo, action),
            (Caller::Token { .. }, None) => true,
            (_, Some(repo)) => self.policy.allows(caller.identity(), repo, action),
            // With token authentication, callers without credentials are always sent to the
            // realm first (as Distribution does), so that a login with a wrong password fails
            // there instead of "succeeding" against an anonymous 200.
            (_, None) if self.tokens.is_some() => caller.identity().is_some(),
            (_, None) => caller.identity().is_some() || self.policy.anonymous_may_pull_somewhere(),
        };
        match (allowed, caller.identity()) {
            (true, _) => Ok(()),
            (false, None) => Err(Denial::Unauthenticated),
            (false, Some(_)) => Err(Denial::Denied),
        }
    }

    /// Whether the caller may pull `repository` (for filtering listings).
    pub fn may_pull(&self, caller: &Caller, repository: &str) -> bool {
        self.policy
            .allows(caller.identity(), repository, Action::Pull)
    }

    /// The token service, when token authentication is enabled.
    pub fn tokens(&self) -> Option<&TokenService> {
        self.tokens.as_deref()
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

/// The token of a `Bearer <token>` header.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, value) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
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
