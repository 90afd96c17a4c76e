//! Berth's registry-token library: claims, ES256 issuance, libtrust key ids, JWK/JWKS
//! handling, and cached verification, shared by the auth service and the registry.
//!
//! Tokens are Docker/GitLab registry tokens: compact JWS, `alg` pinned per key (ES256 for
//! P-256 keys, RS256 for RSA keys), `kid` in libtrust format.

pub mod claims;
pub mod issuer;
pub mod jwk;
pub mod keys;
pub mod kid;
pub mod verifier;

mod cache;
mod keyset;
mod spki;

pub use claims::{Access, AccessMeta, Audience, Claims};
pub use issuer::{Issuer, TokenError};
pub use jwk::{Jwks, jwks, parse_jwks};
pub use keys::{KeyError, PublicKey, SigningKey};
pub use kid::libtrust_kid;
pub use verifier::{KeySource, Verifier, VerifyError};

/// Re-exported so callers can name [`PublicKey::algorithm`]'s type without a direct
/// `jsonwebtoken` dependency.
pub use jsonwebtoken::Algorithm;

/// Seconds since the Unix epoch; a clock before 1970 reads as 0 rather than panicking.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
