//! The first-start admin: when no user is configured, create `admin` with a random password,
//! keep only its argon2id hash in storage (shared by replicas), and print the password once.

use bytes::Bytes;
use oci_storage_core::{PutMode, Secret, Storage, StorageError, StorageExt};
use serde::{Deserialize, Serialize};

use super::password::{StoredPassword, hash_password, random_password};
use crate::registry::layout;

pub const ADMIN_USER: &str = "admin";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitialAdmin {
    username: String,
    password_hash: String,
}

/// Loads the generated admin, creating it (and printing its password once) if needed.
pub async fn ensure(storage: &dyn Storage) -> Result<(String, StoredPassword), StorageError> {
    let key = layout::initial_admin();
    loop {
        match storage.get_bytes(&key, 64 * 1024).await {
            Ok(bytes) => {
                let admin: InitialAdmin = serde_json::from_slice(&bytes)
                    .map_err(|e| StorageError::backend("decoding the initial admin", e))?;
                let stored = StoredPassword::from_config(&Secret::new(admin.password_hash));
                return Ok((admin.username, stored));
            }
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let password = random_password();
        let hash = tokio::task::spawn_blocking({
            let password = password.clone();
            move || hash_password(&password)
        })
        .await
        .map_err(|e| StorageError::backend("hashing the initial password", e))?;
        let record = InitialAdmin {
            username: ADMIN_USER.to_owned(),
            password_hash: hash,
        };
        let bytes = serde_json::to_vec(&record).expect("serializes");
        match storage
            .put_bytes(&key, Bytes::from(bytes), PutMode::Create)
            .await
        {
            Ok(_) => {
                // Printed on the terminal once, on purpose, and never logged: this is the only
                // time the password exists outside the operator's hands.
                eprintln!(
                    "\n  No users are configured: created user '{ADMIN_USER}' with password\n\n      {password}\n\n  It is shown only this once; only its hash is stored ({key}).\n  Configure auth.users to replace it.\n"
                );
                return Ok((
                    ADMIN_USER.to_owned(),
                    StoredPassword::from_config(&Secret::new(record.password_hash)),
                ));
            }
            // Another replica won the race: use its record.
            Err(StorageError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}
