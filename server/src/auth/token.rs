//! The built-in Docker token service: issues ES256-signed JWTs for requested scopes,
//! intersected with what the caller may do (a partial grant is not an error), and verifies
//! them on `/v2`. The signing key comes from `auth.token.key`, or is generated on first start
//! and kept in storage (`system/token-signing-key.json`) so that every replica shares it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use oci_storage_config::TokenConfig;
use oci_storage_core::{Identity, Storage, StorageError, StorageExt};
use serde::{Deserialize, Serialize};

use super::Action;
use crate::registry::layout;

/// One resource access in a token (`access` claim), as Distribution defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// The claims of our tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The username; empty for anonymous tokens.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<Grant>,
    /// The user's groups, for filtering listings.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Claims {
    /// The identity the token stands for (`None`: anonymous).
    pub fn identity(&self) -> Option<Identity> {
        (!self.sub.is_empty()).then(|| Identity {
            username: self.sub.clone(),
            groups: self.groups.clone(),
        })
    }

    /// Whether the token grants `action` on repository `name`.
    pub fn allows(&self, name: &str, action: Action) -> bool {
        let wanted = action_name(action);
        self.access.iter().any(|g| {
            g.kind == "repository"
                && g.name == name
                && g.actions.iter().any(|a| a == wanted || a == "*")
        })
    }
}

pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull",
        Action::Push => "push",
        Action::Delete => "delete",
    }
}

/// A requested scope: `repository:<name>:<actions>` (the name may contain `:`, as in
/// `host:port/name`, so type and actions are split off from the ends).
pub fn parse_scope(scope: &str) -> Option<Grant> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    Some(Grant {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions: actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The JSON answer of the token endpoint.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredKey {
    /// PKCS#8 DER of the P-256 private key, base64.
    pkcs8: String,
}

/// Issues and verifies tokens.
pub struct TokenService {
    config: TokenConfig,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.config.issuer)
            .field("service", &self.config.service)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

impl TokenService {
    /// Loads the signing key from `auth.token.key`, or from storage, creating it there once.
    pub async fn load(config: TokenConfig, storage: &dyn Storage) -> anyhow::Result<Self> {
        let pkcs8 = match &config.key {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("reading auth.token.key {}: {e}", path.display())
                })?;
                match rustls_pemfile::private_key(&mut pem.as_slice()) {
                    Ok(Some(rustls_pki_types::PrivateKeyDer::Pkcs8(der))) => {
                        der.secret_pkcs8_der().to_vec()
                    }
                    _ => anyhow::bail!(
                        "auth.token.key {} must be a PKCS#8 EC P-256 private key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)",
                        path.display()
                    ),
                }
            }
            None => stored_key(storage).await?,
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|e| anyhow::anyhow!("token signing key: {e}"))?;
        Ok(Self {
            decoding: DecodingKey::from_ec_der(pair.public_key().as_ref()),
            encoding: EncodingKey::from_ec_der(&pkcs8),
            config,
        })
    }

    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Signs a token for `who` with `access`.
    pub fn issue(
        &self,
        who: Option<&Identity>,
        access: Vec<Grant>,
    ) -> anyhow::Result<TokenResponse> {
        let now = now_secs();
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: who.map(|w| w.username.clone()).unwrap_or_default(),
            aud: self.config.service.clone(),
            exp: now + self.config.expiry_seconds,
            nbf: now.saturating_sub(10),
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access,
            groups: who.map(|w| w.groups.clone()).unwrap_or_default(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)?;
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: self.config.expiry_seconds,
            issued_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        })
    }

    /// Checks signature, issuer, audience and validity period.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.service]);
        // Tokens are issued and checked by the same clock (or replicas in sync): no leeway.
        validation.leeway = 0;
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .ok()
    }

    /// The `WWW-Authenticate` challenge for a request to `host` needing `scope`.
    pub fn challenge(&self, scheme: &str, host: &str, scope: Option<&str>) -> String {
        let realm = match &self.config.realm {
            Some(realm) => realm.clone(),
            None => format!("{scheme}://{host}/auth/token"),
        };
        let mut challenge = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            realm.replace('"', ""),
            self.config.service.replace('"', "")
        );
        if let Some(scope) = scope {
            challenge.push_str(&format!(",scope=\"{}\"", scope.replace('"', "")));
        }
        challenge
    }
}

/// The generated signing key, shared by replicas through storage.
async fn stored_key(storage: &dyn Storage) -> anyhow::Result<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = storage
        .get_or_create(&layout::token_signing_key(), 64 * 1024, || {
            let document = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|e| StorageError::Backend {
                message: format!("generating the token signing key: {e}"),
                source: None,
            })?;
            tracing::info!("generating the token signing key");
            let stored = StoredKey {
                pkcs8: b64.encode(document.as_ref()),
            };
            Ok(Bytes::from(
                serde_json::to_vec(&stored).expect("a key record serializes"),
            ))
        })
        .await?;
    let stored: StoredKey = serde_json::from_slice(&bytes)?;
    Ok(b64.decode(stored.pkcs8)?)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let g = parse_scope("repository:localhost:5000/a/b:pull,push").unwrap();
        assert_eq!(
            (g.kind.as_str(), g.name.as_str()),
            ("repository", "localhost:5000/a/b")
        );
        assert_eq!(g.actions, ["pull", "push"]);
        let c = parse_scope("registry:catalog:*").unwrap();
        assert_eq!((c.name.as_str(), c.actions[0].as_str()), ("catalog", "*"));
        assert!(parse_scope("nonsense").is_none());
        assert!(parse_scope("repository::pull").is_none());
    }
}
