//! Browser sessions: a signed cookie (HS256 JWT) naming the user, its groups and a CSRF token.
//!
//! Stateless, so every replica accepts every session: the signing secret is generated once into
//! storage with a create-only write and shared, like the token service's key. Forms carry the
//! session's CSRF token; the login form, which has no session yet, uses a double-submit cookie.

use std::sync::Arc;

use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use oci_storage_core::{Identity, Key, Storage, StorageExt};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The session cookie.
pub const SESSION_COOKIE: &str = "ocis_session";
/// The pre-login CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "ocis_login_csrf";
/// How long a login lasts.
const SESSION_SECONDS: u64 = 12 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sub: String,
    pub groups: Vec<String>,
    pub exp: u64,
    /// The token every form of this session must carry.
    pub csrf: String,
}

impl SessionClaims {
    pub fn identity(&self) -> Identity {
        Identity {
            username: self.sub.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// Signs and checks session cookies. The secret is read (or created) on first use, so a
/// registry whose web interface is never used writes nothing for it.
pub struct Sessions {
    storage: Arc<dyn Storage>,
    keys: tokio::sync::OnceCell<Keys>,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions { .. }")
    }
}

/// A random token for forms and cookies (32 hex digits).
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            keys: tokio::sync::OnceCell::new(),
        }
    }

    async fn keys(&self) -> anyhow::Result<&Keys> {
        self.keys
            .get_or_try_init(|| Keys::load(self.storage.as_ref()))
            .await
    }
}

impl Keys {
    /// Loads the signing secret from storage, creating it on first use.
    async fn load(storage: &dyn Storage) -> anyhow::Result<Self> {
        let key = Key::new("system/ui-session-key.json").expect("a valid key");
        let bytes = storage
            .get_or_create(&key, 4096, || {
                let mut secret = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut secret);
                let stored = StoredSecret {
                    secret: hex::encode(secret),
                };
                Ok(Bytes::from(
                    serde_json::to_vec(&stored).expect("a secret record serializes"),
                ))
            })
            .await?;
        let secret = serde_json::from_slice::<StoredSecret>(&bytes)?.secret;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        })
    }
}

impl Sessions {
    /// A session cookie value for this identity.
    pub async fn issue(&self, identity: &Identity) -> anyhow::Result<String> {
        let keys = self.keys().await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let claims = SessionClaims {
            sub: identity.username.clone(),
            groups: identity.groups.clone(),
            exp: now + SESSION_SECONDS,
            csrf: random_token(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &keys.encoding,
        )?)
    }

    /// The claims of a valid, unexpired session cookie.
    pub async fn verify(&self, cookie: &str) -> Option<SessionClaims> {
        let keys = match self.keys().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!(error = %e, "web sessions unavailable");
                return None;
            }
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        jsonwebtoken::decode::<SessionClaims>(cookie, &keys.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Seconds a session cookie lives.
    pub fn max_age() -> u64 {
        SESSION_SECONDS
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSecret {
    secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sessions() -> (tempfile::TempDir, Sessions) {
        let (dir, storage) = crate::test_support::temporary_storage().await;
        (dir, Sessions::new(storage))
    }

    #[tokio::test]
    async fn sessions_round_trip_and_refuse_forgeries() {
        let (_dir, s) = sessions().await;
        let identity = Identity {
            username: "ada".into(),
            groups: vec!["devs".into()],
        };
        let cookie = s.issue(&identity).await.unwrap();
        let claims = s.verify(&cookie).await.unwrap();
        assert_eq!(claims.identity().username, "ada");
        assert_eq!(claims.csrf.len(), 32);
        let (_other_dir, other) = sessions().await;
        assert!(other.verify(&cookie).await.is_none(), "another secret");
        let mut tampered = cookie.clone();
        tampered.insert(cookie.len() / 2, 'x');
        assert!(s.verify(&tampered).await.is_none());
        assert!(s.verify("").await.is_none());
    }
}
