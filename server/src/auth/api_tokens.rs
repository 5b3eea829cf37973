//! API tokens (robot credentials for CI): created, listed and revoked through the REST API,
//! scoped to repository patterns and actions, with an expiry and a last-used time. A token is
//! `ocis_<id>_<secret>`; only the SHA-256 of the secret is stored (tokens are 190-bit random,
//! so a fast hash is enough), in `system/api-tokens/<id>.json`, shared by replicas. The token
//! itself is shown once, at creation. It is used as the password of HTTP Basic auth (helm
//! registry login, docker login, skopeo --creds) with the owner's username.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oci_storage_config::RuleAction;
use oci_storage_core::secret::constant_time_eq;
use oci_storage_core::{Identity, Key, PutMode, Storage, StorageError, StorageExt};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::Action;
use crate::records;

const PREFIX: &str = "ocis_";
pub(crate) const STORAGE_PREFIX: &str = "system/api-tokens/";
/// The last-used time is written at most this often per token.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// A stored token (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenRecord {
    pub id: String,
    pub owner: String,
    pub name: String,
    /// Hex SHA-256 of the secret part.
    secret_sha256: String,
    /// Repository glob patterns the token may touch.
    pub repositories: Vec<String>,
    pub actions: Vec<RuleAction>,
    /// The owner's groups when the token was created.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub last_used_at: Option<u64>,
}

impl oci_storage_core::bounded_cache::Footprint for ApiTokenRecord {
    fn footprint(&self) -> usize {
        self.id.len()
            + self.owner.len()
            + self.name.len()
            + self.secret_sha256.len()
            + self.repositories.footprint()
            + self.groups.footprint()
            + self.actions.len() * std::mem::size_of::<RuleAction>()
    }
}

impl ApiTokenRecord {
    /// Whether the token's own scope covers `action` on `repository` (the owner's permissions
    /// apply on top).
    pub fn allows(&self, repository: &str, action: Action) -> bool {
        let wanted = match action {
            Action::Pull => RuleAction::Pull,
            Action::Push => RuleAction::Push,
            Action::Delete => RuleAction::Delete,
        };
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.actions.contains(&wanted)
            && self
                .repositories
                .iter()
                .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches_with(repository, options)))
    }

    /// The identity the token acts as.
    pub fn identity(&self) -> Identity {
        Identity {
            username: self.owner.clone(),
            groups: self.groups.clone(),
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid repository pattern {0:?}")]
    Pattern(String),
    #[error("a token needs at least one repository pattern and one action")]
    Empty,
    #[error(transparent)]
    TooLarge(#[from] records::TooLarge),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Longest repository pattern of a token (a repository name is at most 253 characters).
pub const MAX_PATTERN_LEN: usize = 255;

/// The token store.
#[derive(Debug)]
pub struct ApiTokens {
    storage: Arc<dyn Storage>,
    last_written: Mutex<HashMap<String, Instant>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn record_key(id: &str) -> Option<Key> {
    let valid = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    valid
        .then(|| Key::new(format!("{STORAGE_PREFIX}{id}.json")).ok())
        .flatten()
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a password looks like an API token (so that it is checked here, not as a password).
pub fn looks_like_token(password: &str) -> bool {
    password.starts_with(PREFIX)
}

impl ApiTokens {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            last_written: Mutex::default(),
        }
    }

    /// Creates a token; answers its record and the token (shown once).
    pub async fn create(
        &self,
        owner: &Identity,
        name: &str,
        repositories: Vec<String>,
        actions: Vec<RuleAction>,
        expires_in: Option<Duration>,
    ) -> Result<(ApiTokenRecord, String), TokenError> {
        if repositories.is_empty() || actions.is_empty() {
            return Err(TokenError::Empty);
        }
        if let Some(bad) = repositories
            .iter()
            .find(|p| p.len() > MAX_PATTERN_LEN || glob::Pattern::new(p).is_err())
        {
            return Err(TokenError::Pattern(bad.chars().take(80).collect()));
        }
        let mut actions = actions;
        let mut seen = Vec::new();
        actions.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let id = hex::encode(&random[..8]);
        let secret = hex::encode(&random[8..]);
        let now = now_secs();
        let record = ApiTokenRecord {
            id: id.clone(),
            owner: owner.username.clone(),
            groups: owner.groups.clone(),
            name: name.to_owned(),
            secret_sha256: sha256_hex(&secret),
            repositories,
            actions,
            created_at: now,
            expires_at: expires_in.map(|d| now + d.as_secs()),
            last_used_at: None,
        };
        self.write(&record, PutMode::Create).await?;
        Ok((record, format!("{PREFIX}{id}_{secret}")))
    }

    async fn write(&self, record: &ApiTokenRecord, mode: PutMode) -> Result<(), TokenError> {
        let key = record_key(&record.id).expect("ids are generated valid");
        let bytes = records::API_TOKEN.encode(record)?;
        self.storage.put_bytes(&key, bytes, mode).await?;
        Ok(())
    }

    /// Every token, or those of one owner. A record that cannot be read is skipped (logged).
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<ApiTokenRecord>, StorageError> {
        let mut out = Vec::new();
        for meta in self.storage.list_all(STORAGE_PREFIX).await? {
            let record: Option<ApiTokenRecord> = records::API_TOKEN
                .read_listed(self.storage.as_ref(), &meta.key)
                .await?;
            out.extend(record.filter(|r| owner.is_none_or(|o| o == r.owner)));
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// A token's record, if it exists; [`records::ReadError::Unreadable`] when it exists
    /// but cannot be read (an administrator may still revoke it).
    pub async fn get(&self, id: &str) -> Result<Option<ApiTokenRecord>, records::ReadError> {
        let Some(key) = record_key(id) else {
            return Ok(None);
        };
        records::API_TOKEN.read(self.storage.as_ref(), &key).await
    }

    /// Deletes a token.
    pub async fn revoke(&self, id: &str) -> Result<(), StorageError> {
        match record_key(id) {
            Some(key) => self.storage.delete(&key).await,
            None => Ok(()),
        }
    }

    /// Checks a presented token for `username`: answers its record when valid.
    pub async fn verify(
        &self,
        username: &str,
        token: &str,
    ) -> Result<Option<ApiTokenRecord>, StorageError> {
        let Some((id, secret)) = token.strip_prefix(PREFIX).and_then(|t| t.split_once('_')) else {
            return Ok(None);
        };
        let record = match self.get(id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(None),
            Err(records::ReadError::Storage(e)) => return Err(e),
            Err(e @ records::ReadError::Unreadable { .. }) => {
                tracing::warn!(error = %e, "an API token's record cannot be read: refused");
                return Ok(None);
            }
        };
        let matches = constant_time_eq(
            sha256_hex(secret).as_bytes(),
            record.secret_sha256.as_bytes(),
        );
        if !matches || record.owner != username || record.expired(now_secs()) {
            return Ok(None);
        }
        self.touch(&record);
        Ok(Some(record))
    }

    /// Records the last use, at most once a minute per token, off the request path.
    fn touch(&self, record: &ApiTokenRecord) {
        {
            let mut written = self.last_written.lock().unwrap_or_else(|p| p.into_inner());
            if written
                .get(&record.id)
                .is_some_and(|at| at.elapsed() < LAST_USED_EVERY)
            {
                return;
            }
            written.insert(record.id.clone(), Instant::now());
        }
        let mut record = record.clone();
        record.last_used_at = Some(now_secs());
        let storage = self.storage.clone();
        tokio::spawn(async move {
            let Some(key) = record_key(&record.id) else {
                return;
            };
            // A conditional write: a token revoked meanwhile stays revoked.
            if let Ok(meta) = storage.head(&key).await
                && let Some(version) = meta.version
            {
                let Ok(bytes) = records::API_TOKEN.encode(&record) else {
                    return;
                };
                let _ = storage
                    .put_bytes(&key, bytes, PutMode::Update(version))
                    .await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, ApiTokens) {
        let (dir, storage) = crate::test_support::temporary_storage().await;
        (dir, ApiTokens::new(storage))
    }

    fn alice() -> Identity {
        Identity {
            username: "alice".into(),
            groups: vec!["team".into()],
        }
    }

    #[tokio::test]
    async fn verify_scope_expiry_and_revocation() {
        let (_dir, tokens) = store().await;
        let (record, token) = tokens
            .create(
                &alice(),
                "ci",
                vec!["ci/**".into()],
                vec![RuleAction::Pull],
                None,
            )
            .await
            .unwrap();
        let found = tokens.verify("alice", &token).await.unwrap().unwrap();
        assert_eq!(found.id, record.id);
        assert_eq!(found.identity(), alice());
        assert!(found.allows("ci/a/b", Action::Pull));
        assert!(!found.allows("ci/a/b", Action::Push));
        assert!(!found.allows("prod/a", Action::Pull));
        assert!(tokens.verify("bob", &token).await.unwrap().is_none());
        let last = if token.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &token[..token.len() - 1]);
        assert!(tokens.verify("alice", &forged).await.unwrap().is_none());
        assert!(
            tokens
                .verify("alice", "ocis_zz_zz")
                .await
                .unwrap()
                .is_none()
        );

        let (_, expired) = tokens
            .create(
                &alice(),
                "old",
                vec!["**".into()],
                vec![RuleAction::Pull],
                Some(Duration::ZERO),
            )
            .await
            .unwrap();
        assert!(
            tokens.verify("alice", &expired).await.unwrap().is_none(),
            "expired"
        );

        tokens.revoke(&record.id).await.unwrap();
        assert!(
            tokens.verify("alice", &token).await.unwrap().is_none(),
            "revoked"
        );
        assert!(matches!(
            tokens
                .create(
                    &alice(),
                    "x",
                    vec!["a/[b".into()],
                    vec![RuleAction::Pull],
                    None
                )
                .await,
            Err(TokenError::Pattern(_))
        ));
    }
}
