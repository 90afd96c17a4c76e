//! Token issuance: building the claim set and signing compact ES256 JWS tokens.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::claims::{Access, Audience, Claims};
use crate::keys::{PublicKey, SigningKey};

/// How far `nbf` is backdated so a verifier whose clock runs slightly behind the issuer's
/// still accepts a fresh token.
const NBF_BACKDATE_SECS: i64 = 5;

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The header or claims could not be serialized.
    #[error("serializing token: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The signature could not be produced.
    #[error("signing token failed")]
    Sign,
}

/// The JOSE header Berth writes; field order matches what Docker's auth servers emit.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// Signs registry tokens with one ES256 key for one issuer/audience pair.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: SigningKey,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl Issuer {
    /// An issuer signing with `key`, stamping `iss = issuer`, `aud = audience`, and
    /// making tokens valid for `ttl`.
    pub fn new(
        key: SigningKey,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            key,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl,
        }
    }

    /// Signs a token: header {alg:ES256, typ:JWT, kid}; claims iat=now, nbf=now-5s,
    /// exp=now+ttl, jti = random uuid.
    pub fn issue(
        &self,
        sub: Option<String>,
        auth_type: Option<String>,
        access: Vec<Access>,
    ) -> Result<(String, Claims), TokenError> {
        let now = crate::now_unix();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub,
            aud: Audience::single(self.audience.clone()),
            iat: now,
            nbf: now.saturating_sub(NBF_BACKDATE_SECS),
            exp: now.saturating_add(ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            auth_type,
            access,
        };
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Low-level: sign arbitrary claims as given (tests use this to mint
    /// expired/not-yet-valid/wrong-aud tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = serde_json::to_vec(&Header {
            alg: "ES256",
            typ: "JWT",
            kid: self.key.kid(),
        })?;
        let payload = serde_json::to_vec(claims)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let signature = self
            .key
            .sign_jws(token.as_bytes())
            .map_err(|_| TokenError::Sign)?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// The `iss` stamped on issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` stamped on issued tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// How long issued tokens stay valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The verification key matching the signing key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_sets_times_and_header() {
        let issuer = Issuer::new(
            SigningKey::generate(),
            "auth",
            "registry",
            Duration::from_secs(300),
        );
        let (token, claims) = issuer
            .issue(
                Some("alice".into()),
                None,
                vec![Access::repository("a/b", &["pull"])],
            )
            .unwrap();
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(claims.iat - claims.nbf, 5);
        assert_eq!(claims.aud, Audience::single("registry"));
        assert_eq!(claims.jti.len(), 36);

        let header = token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], issuer.public_key().kid());
    }

    #[test]
    fn tokens_interoperate_with_jsonwebtoken() {
        // Cross-check our hand-built JWS against an independent implementation.
        let issuer = Issuer::new(
            SigningKey::generate(),
            "auth",
            "reg",
            Duration::from_secs(60),
        );
        let (token, claims) = issuer.issue(None, None, vec![]).unwrap();
        let key = jsonwebtoken::DecodingKey::from_ec_pem(issuer.public_key().to_pem().as_bytes())
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["reg"]);
        validation.set_issuer(&["auth"]);
        let data = jsonwebtoken::decode::<Claims>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims, claims);
        assert_eq!(data.header.kid.as_deref(), Some(issuer.public_key().kid()));
    }
}
