//! The `htpasswd` authenticator: users from an Apache htpasswd file with bcrypt hashes, as
//! Distribution and `htpasswd -B` write them. The file is re-read when its modification time
//! or size changes, so users can be added or removed without a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use oci_storage_core::{
    AuthError, Authenticator, Credentials, Identity, PluginContext, PluginError,
};
use serde::Deserialize;

/// Configuration of an `htpasswd` provider (`auth.providers[] {type: htpasswd, path}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HtpasswdConfig {
    /// The htpasswd file; relative paths are resolved against the working directory.
    pub path: PathBuf,
}

/// The plugin factory, registered as authenticator type `htpasswd`.
pub async fn factory(
    ctx: PluginContext,
    config: serde_json::Value,
) -> Result<Arc<dyn Authenticator>, PluginError> {
    let mut config: HtpasswdConfig = PluginError::parse_config("auth.providers[htpasswd]", config)?;
    if config.path.is_relative() {
        config.path = ctx.base_dir.join(&config.path);
    }
    let htpasswd =
        Htpasswd::open(config.path).map_err(|e| PluginError::Init(format!("htpasswd: {e}")))?;
    Ok(Arc::new(htpasswd))
}

/// What identifies one version of the file.
type Stamp = (Option<SystemTime>, u64);

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    users: HashMap<String, String>,
}

/// Users from an htpasswd file.
#[derive(Debug)]
pub struct Htpasswd {
    path: PathBuf,
    loaded: Mutex<Loaded>,
    /// Verified for unknown users, so they cost as much as known ones.
    dummy_hash: String,
}

impl Htpasswd {
    /// Reads the file now (it must exist and be readable).
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let htpasswd = Self {
            path,
            loaded: Mutex::default(),
            dummy_hash: bcrypt::hash("not a password", bcrypt::DEFAULT_COST)
                .map_err(std::io::Error::other)?,
        };
        htpasswd.reload_if_changed()?;
        Ok(htpasswd)
    }

    fn stamp(&self) -> std::io::Result<Stamp> {
        let meta = std::fs::metadata(&self.path)?;
        Ok((meta.modified().ok(), meta.len()))
    }

    /// Re-reads the file when it changed; answers whether it did.
    fn reload_if_changed(&self) -> std::io::Result<bool> {
        let stamp = self.stamp()?;
        if self.loaded.lock().unwrap_or_else(|p| p.into_inner()).stamp == Some(stamp) {
            return Ok(false);
        }
        let text = std::fs::read_to_string(&self.path)?;
        let users = parse(&text, &self.path.display().to_string());
        let count = users.len();
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Loaded {
            stamp: Some(stamp),
            users,
        };
        tracing::info!(path = %self.path.display(), users = count, "loaded htpasswd file");
        Ok(true)
    }

    fn hash_of(&self, username: &str) -> Option<String> {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.users.get(username).cloned()
    }
}

/// Parses `user:hash` lines; only bcrypt hashes are accepted (others are skipped with a
/// warning, since MD5/SHA1/crypt hashes are too weak to trust).
fn parse(text: &str, origin: &str) -> HashMap<String, String> {
    let mut users = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            tracing::warn!(
                file = origin,
                line = number + 1,
                "ignoring malformed htpasswd line"
            );
            continue;
        };
        if ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
            users.insert(user.to_owned(), hash.to_owned());
        } else {
            tracing::warn!(
                file = origin,
                line = number + 1,
                "ignoring a non-bcrypt htpasswd entry (use htpasswd -B)"
            );
        }
    }
    users
}

#[async_trait]
impl Authenticator for Htpasswd {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        if let Err(e) = self.reload_if_changed() {
            // Keep serving the last good version; the file may be mid-replacement.
            tracing::warn!(path = %self.path.display(), error = %e, "could not re-read htpasswd file");
        }
        let hash = self.hash_of(&credentials.username);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let password = credentials.password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.expose(), &hash).unwrap_or(false)
        })
        .await
        .map_err(|e| AuthError::Unavailable(format!("password check failed: {e}")))?;
        Ok((ok && known).then(|| Identity {
            username: credentials.username.clone(),
            groups: Vec::new(),
        }))
    }

    async fn lookup(&self, username: &str) -> Option<Option<Identity>> {
        if let Err(e) = self.reload_if_changed() {
            tracing::warn!(path = %self.path.display(), error = %e, "could not re-read htpasswd file");
        }
        Some(self.hash_of(username).map(|_| Identity {
            username: username.to_owned(),
            groups: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_storage_core::Secret;

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials {
            username: user.into(),
            password: Secret::new(password),
        }
    }

    #[tokio::test]
    async fn verifies_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let alice = bcrypt::hash("pw-a", 4).unwrap();
        std::fs::write(
            &path,
            format!("# users\nalice:{alice}\nold:{{SHA}}abc\nbroken\n"),
        )
        .unwrap();
        let h = Htpasswd::open(path.clone()).unwrap();
        assert!(
            h.authenticate(&creds("alice", "pw-a"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            h.authenticate(&creds("alice", "nope"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            h.authenticate(&creds("old", "abc"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            h.authenticate(&creds("bob", "pw-b"))
                .await
                .unwrap()
                .is_none()
        );

        let bob = bcrypt::hash("pw-b", 4).unwrap();
        std::fs::write(&path, format!("bob:{bob}\n")).unwrap();
        assert!(
            h.authenticate(&creds("bob", "pw-b"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            h.authenticate(&creds("alice", "pw-a"))
                .await
                .unwrap()
                .is_none(),
            "alice removed"
        );
    }
}
