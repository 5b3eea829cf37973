//! Password hashes: argon2id (what `oci-storage hash-password` writes), bcrypt (what
//! `htpasswd -B` writes), and plaintext (accepted from config, with a warning). Verification is
//! CPU-heavy and blocking: callers run it on the blocking pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use oci_storage_core::Secret;
use oci_storage_core::secret::constant_time_eq;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

/// A stored password in one of the accepted forms.
#[derive(Debug, Clone)]
pub enum StoredPassword {
    Argon2(String),
    Bcrypt(String),
    Plain(Secret),
}

impl StoredPassword {
    /// Classifies a configured password string.
    pub fn from_config(value: &Secret) -> Self {
        let v = value.expose();
        if v.starts_with("$argon2") {
            Self::Argon2(v.to_owned())
        } else if ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .any(|p| v.starts_with(p))
        {
            Self::Bcrypt(v.to_owned())
        } else {
            Self::Plain(value.clone())
        }
    }

    pub fn is_plaintext(&self) -> bool {
        matches!(self, Self::Plain(_))
    }

    /// Checks a candidate password. Blocking and deliberately slow for hashes.
    pub fn verify(&self, candidate: &str) -> bool {
        match self {
            Self::Argon2(hash) => PasswordHash::new(hash).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(candidate.as_bytes(), &parsed)
                    .is_ok()
            }),
            Self::Bcrypt(hash) => bcrypt::verify(candidate, hash).unwrap_or(false),
            Self::Plain(secret) => {
                // Compare fixed-size digests so that neither content nor length leaks.
                let a = Sha256::digest(secret.expose().as_bytes());
                let b = Sha256::digest(candidate.as_bytes());
                constant_time_eq(&a, &b)
            }
        }
    }
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// A random password of 24 alphanumeric characters.
pub fn random_password() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let hash = hash_password("pw");
        let stored = StoredPassword::from_config(&Secret::new(hash));
        assert!(matches!(stored, StoredPassword::Argon2(_)));
        assert!(stored.verify("pw"));
        assert!(!stored.verify("pW"));
    }

    #[test]
    fn bcrypt_and_plain() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let stored = StoredPassword::from_config(&Secret::new(hash));
        assert!(matches!(stored, StoredPassword::Bcrypt(_)));
        assert!(stored.verify("pw") && !stored.verify("px"));
        let plain = StoredPassword::from_config(&Secret::new("pw"));
        assert!(plain.is_plaintext() && plain.verify("pw") && !plain.verify("pw2"));
    }
}
