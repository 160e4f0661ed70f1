//! Passwords are stored and handed between the bootstrapper and the api only as argon2id
//! hashes in PHC form: hashed here, by the CLI for the first administrator and by the api for
//! every other account, and verified here.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The argon2id hash of `password` with a random salt.
pub fn hash(password: &str) -> String {
    // 16 bytes always make a valid salt, and the default parameters hash any password
    // shorter than 4 GiB: neither can fail
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("a 16-byte salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id with the default parameters")
        .to_string()
}

/// Whether `password` matches the PHC string `hash` (a malformed hash matches nothing).
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = super::hash("correct horse");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong", &h));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
