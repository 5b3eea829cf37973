//! The built-in `Authenticator`: users from configuration (and the generated initial admin).
//! Unknown users are checked against a dummy hash so they cost as much as wrong passwords.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use oci_storage_core::{AuthError, Authenticator, Credentials, Identity, Secret};

use super::password::{StoredPassword, hash_password, random_password};

/// Users known from configuration.
#[derive(Debug, Clone)]
pub struct ConfigUsers {
    users: Arc<HashMap<String, ConfigUser>>,
    dummy: Arc<StoredPassword>,
}

/// One user's password and groups.
#[derive(Debug, Clone)]
pub struct ConfigUser {
    pub password: StoredPassword,
    pub groups: Vec<String>,
}

impl ConfigUsers {
    /// Builds the user table; computing the dummy hash takes one argon2 run.
    pub fn new(users: impl IntoIterator<Item = (String, ConfigUser)>) -> Self {
        Self {
            users: Arc::new(users.into_iter().collect()),
            dummy: Arc::new(StoredPassword::Argon2(hash_password(&random_password()))),
        }
    }

    /// Names of users whose password is configured in plaintext.
    pub fn plaintext_users(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .users
            .iter()
            .filter(|(_, u)| u.password.is_plaintext())
            .map(|(u, _)| u.as_str())
            .collect();
        names.sort();
        names
    }
}

#[async_trait]
impl Authenticator for ConfigUsers {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        let user = self.users.get(&credentials.username);
        let known = user.is_some();
        let stored = user.map_or_else(|| (*self.dummy).clone(), |u| u.password.clone());
        let candidate: Secret = credentials.password.clone();
        let ok = tokio::task::spawn_blocking(move || stored.verify(candidate.expose()))
            .await
            .map_err(|e| AuthError::Unavailable(format!("password check failed: {e}")))?;
        Ok((ok && known).then(|| Identity {
            username: credentials.username.clone(),
            groups: user.map(|u| u.groups.clone()).unwrap_or_default(),
        }))
    }

    async fn lookup(&self, username: &str) -> Option<Option<Identity>> {
        Some(self.users.get(username).map(|u| Identity {
            username: username.to_owned(),
            groups: u.groups.clone(),
        }))
    }
}
