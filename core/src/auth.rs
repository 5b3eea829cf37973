//! The `Authenticator` trait: turns credentials presented by a client into an identity.
//! Implemented by authentication plugins (config users, htpasswd, …); called by the server's
//! access layer, which caches successful answers.

use std::fmt;

use async_trait::async_trait;

use crate::Secret;

/// Username and password (or API token) as sent by a client, e.g. in HTTP Basic auth.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// Who a client is, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    /// Groups or roles the identity belongs to (used by access rules).
    pub groups: Vec<String>,
}

/// Failures other than "wrong credentials" (which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("authentication backend unavailable: {0}")]
    Unavailable(String),
}

/// Checks credentials.
///
/// # Contract
/// - Answers `Ok(Some(identity))` for valid credentials, `Ok(None)` for an unknown user or a
///   wrong password — the two must be indistinguishable, in the answer and in time taken
///   (verify against a dummy hash for unknown users; compare in constant time).
/// - Never logs, formats or returns the password.
/// - May be slow (password hashing): the caller runs it off the request path's hot loop and
///   caches successes briefly, so implementations need no cache of their own.
/// - Errors are reserved for an unreachable backend (a file that cannot be read…), so that the
///   caller can answer 503 rather than 401.
///
/// `lookup` answers whether a user exists now (without a password), so that credentials
/// derived from a user — API tokens — stop working when the user is removed, and carry the
/// user's current groups. `None` means this source cannot tell (the default).
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError>;

    /// `Some(Some(identity))`: the user exists; `Some(None)`: it does not; `None`: unknown.
    async fn lookup(&self, _username: &str) -> Option<Option<Identity>> {
        None
    }
}
