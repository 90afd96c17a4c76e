//! Secrets: random tokens with recognisable prefixes, their SHA-256 digests (the only form
//! stored) and constant-time comparison. Passwords: `crate::passwords`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Personal, project and group access tokens.
pub const PAT_PREFIX: &str = "bpat-";
/// Deploy tokens.
pub const DEPLOY_PREFIX: &str = "bdt-";
/// CI job tokens.
pub const JOB_PREFIX: &str = "bjob-";
/// API tokens from `POST /oauth/token`.
pub const OAUTH_PREFIX: &str = "boat-";
/// Refresh tokens (API and registry).
pub const REFRESH_PREFIX: &str = "brt-";

/// A new secret: `prefix` + 192 random bits (URL-safe base64, 32 characters). The prefix
/// lets secret scanners recognise a leaked token.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token: SHA-256, lowercase hex. Enough for high-entropy secrets
/// (nothing to brute-force), and a unique index finds the row in one lookup.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compare two digests (or names) without leaking where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_long() {
        let a = generate(PAT_PREFIX);
        let b = generate(PAT_PREFIX);
        assert!(a.starts_with("bpat-"));
        assert_eq!(a.len(), 5 + 32);
        assert_ne!(a, b);
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same(&digest("x"), &digest("x")));
        assert!(!same(&digest("x"), &digest("y")));
        assert!(!same("a", "ab"));
    }
}
