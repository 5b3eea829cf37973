//! Who may call the registry: HTTP Basic credentials checked by the configured
//! [`Authenticator`], with successful checks cached briefly (clients send credentials on every
//! request), and the rule that pulls may be anonymous while pushes and deletes need a login.
//! Finer permissions (per repository, tokens) build on [`Access::authorize`].

pub mod api_tokens;
pub mod gate;
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
use oci_storage_core::bounded_cache::{BoundedCache, Footprint, Sharding, bounded_cache};
use oci_storage_core::{Authenticator, Credentials, Identity, Secret};
use sha2::{Digest as _, Sha256};

use api_tokens::{ApiTokenRecord, ApiTokens};
use gate::HashGate;
use limiter::LoginLimiter;
use policy::Policy;
use token::{Claims, TokenService};

/// How long a successful credential check is trusted.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Bytes of cached successful checks (thousands of principals).
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Longest username and password accepted in Basic credentials (bcrypt reads 72 bytes,
/// API tokens are 40-odd characters): longer ones are refused before anything is hashed or
/// remembered.
const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 1024;
/// How long a client refused by the hashing gate is asked to wait.
const GATE_RETRY: Duration = Duration::from_secs(1);
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

/// Someone authenticated with credentials: a password, or an API token limiting what the
/// identity may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub identity: Identity,
    pub api_token: Option<Arc<ApiTokenRecord>>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    /// Authenticated with credentials.
    User(Principal),
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
            Self::User(principal) => Some(&principal.identity),
            Self::Token { identity, .. } => identity.as_ref(),
        }
    }
}

/// The access gate: authentication (with a cache and brute-force limits) and authorization.
#[derive(Debug)]
pub struct Access {
    authenticators: Vec<Arc<dyn Authenticator>>,
    api_tokens: Arc<ApiTokens>,
    tokens: Option<Arc<TokenService>>,
    policy: Policy,
    limiter: LoginLimiter,
    gate: HashGate,
    /// sha256(username NUL password) → principal and expiry; never the password itself.
    cache: BoundedCache<[u8; 32], (Principal, Instant)>,
    /// Checks in progress by the same fingerprint: identical credentials arriving together
    /// (a client's parallel requests) share one check.
    checking: Mutex<HashMap<[u8; 32], Arc<CheckResult>>>,
}

type CheckResult = tokio::sync::OnceCell<Result<Option<Principal>, Denial>>;

impl Access {
    /// `authenticators` are asked in order; the first that knows the credentials wins.
    pub fn new(
        authenticators: Vec<Arc<dyn Authenticator>>,
        api_tokens: Arc<ApiTokens>,
        tokens: Option<Arc<TokenService>>,
        policy: Policy,
        limiter: LoginLimiter,
        gate: HashGate,
    ) -> Self {
        Self {
            authenticators,
            api_tokens,
            tokens,
            policy,
            limiter,
            gate,
            cache: bounded_cache(CACHE_BYTES, 512, Sharding::Sharded),
            checking: Mutex::new(HashMap::new()),
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
            Some(principal) => Caller::User(principal),
            None => Caller::Anonymous,
        })
    }

    /// Identifies the caller of an HTTP request (its `Authorization` header, its peer address
    /// for the login limits) and names the user in the request's access-log line.
    pub async fn identify_request(&self, req: &poem::Request) -> Result<Caller, Denial> {
        let authorization = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let client = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let caller = self.identify(authorization, client).await?;
        if let (Some(user), Some(slot)) = (
            caller.identity(),
            req.extensions().get::<crate::logging::RequestUser>(),
        ) {
            slot.set(&user.username);
        }
        Ok(caller)
    }

    /// Checks HTTP Basic credentials — a password, or an API token as the password — with the
    /// cache, the login limits and the hashing gate.
    pub async fn basic(
        &self,
        header: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<Principal>, Denial> {
        let credentials = parse_basic(header).ok_or(Denial::Unauthenticated)?;
        // Empty credentials (`Basic Og==`) are what skopeo/podman send after a Basic
        // challenge when they have none: the caller is anonymous.
        if credentials.username.is_empty() && credentials.password.expose().is_empty() {
            return Ok(None);
        }
        // Limits first, even for cached credentials: a blocked client must not learn that a
        // guess was right.
        let client = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if let Some(wait) = self.limiter.check(client, &credentials.username) {
            tracing::warn!(client = %client, "login refused: too many failed attempts");
            crate::metrics::get().logins.throttled.inc();
            return Err(Denial::TooManyRequests(wait));
        }
        let fingerprint = fingerprint(&credentials);
        if let Some(principal) = self.cached(&fingerprint) {
            return Ok(Some(principal));
        }
        let check = {
            let mut checking = self.checking.lock().unwrap_or_else(|p| p.into_inner());
            checking.entry(fingerprint).or_default().clone()
        };
        let result = check
            .get_or_init(|| self.check_uncached(&credentials, client, fingerprint))
            .await
            .clone();
        {
            let mut checking = self.checking.lock().unwrap_or_else(|p| p.into_inner());
            if checking
                .get(&fingerprint)
                .is_some_and(|c| Arc::ptr_eq(c, &check))
            {
                checking.remove(&fingerprint);
            }
        }
        match result {
            Ok(Some(principal)) => Ok(Some(principal)),
            Ok(None) => Err(Denial::Unauthenticated),
            Err(denial) => Err(denial),
        }
    }

    /// The expensive check of credentials the cache does not know: admitted by the hashing
    /// gate, counted as a failed attempt from its start, remembered when it succeeds.
    async fn check_uncached(
        &self,
        credentials: &Credentials,
        client: IpAddr,
        fingerprint: [u8; 32],
    ) -> Result<Option<Principal>, Denial> {
        let Some(admission) = self.gate.admit(client) else {
            tracing::warn!(client = %client, "login refused: too many password checks in progress");
            crate::metrics::get().logins.throttled.inc();
            return Err(Denial::TooManyRequests(GATE_RETRY));
        };
        if let Err(wait) = self.limiter.attempt(client, &credentials.username) {
            tracing::warn!(client = %client, "login refused: too many failed attempts");
            crate::metrics::get().logins.throttled.inc();
            return Err(Denial::TooManyRequests(wait));
        }
        let pass = admission.wait().await;
        let found = if api_tokens::looks_like_token(credentials.password.expose()) {
            self.check_api_token(credentials).await?
        } else {
            self.check_password(credentials).await?
        };
        drop(pass);
        let Some(mut principal) = found else {
            tracing::info!(client = %client, "authentication failed");
            crate::metrics::get().logins.failures.inc();
            return Ok(None);
        };
        self.policy.add_memberships(&mut principal.identity);
        self.limiter.succeeded(client, &credentials.username);
        self.remember(fingerprint, principal.clone());
        Ok(Some(principal))
    }

    async fn check_password(&self, credentials: &Credentials) -> Result<Option<Principal>, Denial> {
        for authenticator in &self.authenticators {
            match authenticator.authenticate(credentials).await {
                Ok(Some(identity)) => {
                    return Ok(Some(Principal {
                        identity,
                        api_token: None,
                    }));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "authentication backend failed");
                    return Err(Denial::Unavailable);
                }
            }
        }
        Ok(None)
    }

    async fn check_api_token(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<Principal>, Denial> {
        match self
            .api_tokens
            .verify(&credentials.username, credentials.password.expose())
            .await
        {
            Ok(Some(record)) => {
                // The token acts as its owner as the owner is now: gone → refused; groups current.
                let Some(identity) = self
                    .current_identity(&record.owner, record.identity())
                    .await
                else {
                    tracing::info!(token = %record.id, "API token of a user who no longer exists");
                    return Ok(None);
                };
                Ok(Some(Principal {
                    identity,
                    api_token: Some(Arc::new(record)),
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "API token store failed");
                Err(Denial::Unavailable)
            }
        }
    }

    /// A user as the identity sources know them now (current groups), for credentials checked
    /// earlier (an API token, a browser session): `None` when a source says the user no longer
    /// exists; `recorded` when no source can tell.
    pub async fn current_identity(&self, username: &str, recorded: Identity) -> Option<Identity> {
        let mut can_tell = false;
        for authenticator in &self.authenticators {
            match authenticator.lookup(username).await {
                Some(Some(identity)) => return Some(identity),
                Some(None) => can_tell = true,
                None => {}
            }
        }
        (!can_tell).then_some(recorded)
    }

    /// The API token store.
    pub fn api_tokens(&self) -> &ApiTokens {
        &self.api_tokens
    }

    /// Forgets cached logins made with an API token (after it was revoked).
    pub fn forget_api_token(&self, id: &str) {
        self.cache
            .retain(|_, (p, _)| p.api_token.as_ref().is_none_or(|t| t.id != id));
    }

    /// Whether a principal (None: anonymous) may perform `action` on `repository`: the
    /// policy, narrowed by the scope of an API token.
    pub fn permits(&self, who: Option<&Principal>, repository: &str, action: Action) -> bool {
        self.policy
            .allows(who.map(|p| &p.identity), repository, action)
            && who
                .and_then(|p| p.api_token.as_ref())
                .is_none_or(|t| t.allows(repository, action))
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
            (Caller::User(principal), Some(repo)) => self.permits(Some(principal), repo, action),
            (Caller::Anonymous, Some(repo)) => self.permits(None, repo, action),
            // The registry as a whole (`_catalog`; the `/v2/` ping is always challenged by
            // the /v2 layer): with token authentication, callers without credentials are sent
            // to the realm first, as Distribution does.
            (_, None) if self.tokens.is_some() => caller.identity().is_some(),
            (_, None) => caller.identity().is_some() || self.policy.anonymous_may_pull_somewhere(),
        };
        match (allowed, caller.identity()) {
            (true, _) => Ok(()),
            (false, None) => Err(Denial::Unauthenticated),
            (false, Some(_)) => Err(Denial::Denied),
        }
    }

    /// Whether the caller may pull `repository` (for filtering listings): the same decision
    /// as [`Access::authorize`], so API-token scopes and JWT grants narrow listings too.
    pub fn may_pull(&self, caller: &Caller, repository: &str) -> bool {
        self.authorize(caller, Some(repository), Action::Pull)
            .is_ok()
    }

    /// The token service, when token authentication is enabled.
    pub fn tokens(&self) -> Option<&TokenService> {
        self.tokens.as_deref()
    }

    fn cached(&self, fingerprint: &[u8; 32]) -> Option<Principal> {
        self.cache
            .get(fingerprint)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(principal, _)| principal)
    }

    fn remember(&self, fingerprint: [u8; 32], principal: Principal) {
        self.cache
            .insert(fingerprint, (principal, Instant::now() + CACHE_TTL));
    }
}

impl Footprint for Principal {
    fn footprint(&self) -> usize {
        let identity = self.identity.username.len() + self.identity.groups.footprint();
        identity
            + self
                .api_token
                .as_deref()
                .map_or(0, ApiTokenRecord::footprint)
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
    if username.len() > MAX_USERNAME || password.len() > MAX_PASSWORD {
        return None;
    }
    Some(Credentials {
        username: username.to_owned(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod proptests;

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
