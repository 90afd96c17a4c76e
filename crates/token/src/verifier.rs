//! Token verification for the registry: strict compact-JWS parsing, pinned-algorithm
//! signature checks against trusted keys, claim validation, and the verified-token cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cache::TokenCache;
use crate::claims::Claims;
use crate::keys::{KeyError, PublicKey};
use crate::keyset::KeySet;

/// Clock skew tolerated on `exp` and `nbf` unless overridden.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Verified tokens remembered at most.
const CACHE_CAPACITY: usize = 16_384;
/// Longer strings are not tokens we issue; refusing them early bounds hashing and parsing.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a token was rejected. Messages are safe to return to a client: they never include
/// the token or key material.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum VerifyError {
    /// Not a well-formed compact JWS with JSON header and claims.
    #[error("token is malformed")]
    Malformed,
    /// `alg` is `none`, unsupported, or not the algorithm pinned to the signing key.
    #[error("token signing algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// No trusted key has the token's `kid` (or the token has none).
    #[error("token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not match the header and claims.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not yet valid")]
    NotYetValid,
    /// `aud` does not include this service.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// `iss` is not the trusted issuer.
    #[error("token issuer is not trusted")]
    WrongIssuer,
    /// Trusted keys could not be loaded (e.g. the JWKS endpoint is down).
    #[error("token verification keys are unavailable: {0}")]
    KeySource(String),
}

/// Where a verifier gets its trusted keys.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A fixed set of keys (e.g. from a PEM file).
    Static(Vec<PublicKey>),
    /// A JWKS endpoint, fetched on first use and refetched (at most once per 10 s) when a
    /// token names an unknown kid. Only `http://` works: this build has no TLS backend.
    Jwks {
        /// The JWKS document URL.
        url: String,
    },
}

/// The subset of the JOSE header we act on. Everything else — notably `jwk`, `jku`,
/// `x5c` and `x5u` — is deliberately ignored: only `kid` may select a key, and only
/// among keys we already trust.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Verifies registry tokens for one issuer/audience pair. `Send + Sync`; share it
/// behind an `Arc`.
pub struct Verifier {
    pub(crate) keys: KeySet,
    issuer: String,
    audience: String,
    leeway: i64,
    cache: TokenCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier trusting `source`'s keys for tokens from `issuer` to `audience`, with a
    /// 60 s leeway on `exp`/`nbf`.
    pub fn new(source: KeySource, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            keys: KeySet::new(source),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: secs(DEFAULT_LEEWAY),
            cache: TokenCache::new(CACHE_CAPACITY),
        }
    }

    /// Replaces the clock-skew leeway applied to `exp` and `nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = secs(leeway);
        self
    }

    /// Load keys from a PEM file path (KeySource::Static) — helper for config.
    pub fn from_pem_file(
        path: &Path,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let keys = PublicKey::from_pem(&pem)?;
        Ok(Self::new(KeySource::Static(keys), issuer, audience))
    }

    /// The trusted issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// This service's audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verify a compact JWS. Checks in order: header (malformed, `alg: none`/unsupported,
    /// `crit`), kid lookup (JWKS refetch rate limited to once per 10 s), the key's pinned
    /// algorithm, signature, `iss`, `aud`, then `exp`/`nbf` with the leeway. `iat` is not
    /// checked beyond parsing.
    ///
    /// Verified tokens are cached by SHA-256 so repeat calls only re-check `exp`/`nbf`
    /// and return the same `Arc`. A cached token stays valid until its own `exp` even if
    /// its key is later removed from the key source.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, VerifyError> {
        self.verify_at(token, crate::now_unix()).await
    }

    /// [`Verifier::verify`] with an explicit clock, so tests can move time.
    pub(crate) async fn verify_at(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<Claims>, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.cache.get(&digest) {
            self.check_times(&claims, now)?;
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_uncached(token, now).await?);
        self.cache
            .insert(digest, Arc::clone(&claims), now, self.leeway);
        Ok(claims)
    }

    async fn verify_uncached(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header: JoseHeader = decode_json(header_b64)?;
        let alg = match header.alg.as_str() {
            "ES256" => Algorithm::ES256,
            "RS256" => Algorithm::RS256,
            // Includes "none", HMAC (the classic key-confusion attack) and anything else.
            _ => return Err(VerifyError::AlgorithmNotAllowed),
        };
        // RFC 7515 §4.1.11: extensions we do not understand must cause rejection.
        if header.crit.is_some() {
            return Err(VerifyError::Malformed);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.get(&kid).await?;
        if key.algorithm() != alg {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify_jws(signing_input.as_bytes(), signature_b64) {
            return Err(VerifyError::BadSignature);
        }
        let claims: Claims = decode_json(payload_b64)?;
        if claims.iss != self.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !claims.aud.contains(&self.audience) {
            return Err(VerifyError::WrongAudience);
        }
        self.check_times(&claims, now)?;
        Ok(claims)
    }

    fn check_times(&self, claims: &Claims, now: i64) -> Result<(), VerifyError> {
        if claims.exp.saturating_add(self.leeway) < now {
            return Err(VerifyError::Expired);
        }
        if claims.nbf > now.saturating_add(self.leeway) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Access;
    use crate::issuer::Issuer;
    use crate::keys::SigningKey;

    fn setup() -> (Issuer, Verifier) {
        let issuer = Issuer::new(
            SigningKey::generate(),
            "auth",
            "reg",
            Duration::from_secs(300),
        );
        let verifier = Verifier::new(KeySource::Static(vec![issuer.public_key()]), "auth", "reg");
        (issuer, verifier)
    }

    #[test]
    fn verifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<Arc<Verifier>>();
    }

    #[tokio::test]
    async fn cache_hit_returns_same_arc_and_rechecks_expiry() {
        let (issuer, verifier) = setup();
        let (token, _) = issuer
            .issue(None, None, vec![Access::repository("a/b", &["pull"])])
            .unwrap();
        let now = crate::now_unix();
        let first = verifier.verify_at(&token, now).await.unwrap();
        let second = verifier.verify_at(&token, now).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(verifier.cache.len(), 1);

        // An hour later the cached entry must not be honoured.
        let later = now + 3600;
        assert_eq!(
            verifier.verify_at(&token, later).await,
            Err(VerifyError::Expired)
        );
        // And before nbf (minus leeway) it is not yet valid, even from the cache.
        let earlier = now - 3600;
        assert_eq!(
            verifier.verify_at(&token, earlier).await,
            Err(VerifyError::NotYetValid)
        );
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let (issuer, verifier) = setup();
        let (token, _) = issuer.issue(None, None, vec![]).unwrap();
        let now = crate::now_unix();
        assert_eq!(
            verifier.verify_at(&token, now + 3600).await,
            Err(VerifyError::Expired)
        );
        assert_eq!(verifier.cache.len(), 0);
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(verifier.verify_at(&tampered, now).await.is_err());
        assert_eq!(verifier.cache.len(), 0);
    }

    #[tokio::test]
    async fn oversized_token_is_malformed() {
        let (_, verifier) = setup();
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verifier.verify(&huge).await, Err(VerifyError::Malformed));
    }

    #[tokio::test]
    async fn crit_header_is_rejected() {
        let (issuer, verifier) = setup();
        let (token, _) = issuer.issue(None, None, vec![]).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"alg":"ES256","kid":issuer.public_key().kid(),"crit":["b64"]})
                .to_string(),
        );
        let forged = format!("{header}.{payload}.AAAA");
        assert_eq!(verifier.verify(&forged).await, Err(VerifyError::Malformed));
    }
}
