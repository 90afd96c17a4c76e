//! Signing and verification keys: ES256 private keys for the issuer, pinned-algorithm
//! public keys (P-256 or RSA) for verifiers, and their PEM encodings.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

use crate::kid::libtrust_kid;
use crate::spki::{self, Material};

/// Why a key could not be loaded, parsed or encoded. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("reading key file {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM text is not well formed or holds unexpected blocks.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// The input held no usable public keys.
    #[error("no public keys found")]
    NoKeys,
    /// The key is of a type, curve or size Berth does not accept.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// The key is malformed.
    #[error("invalid key: {0}")]
    Invalid(String),
    /// A JWK is malformed or inconsistent.
    #[error("invalid JWK: {0}")]
    Jwk(String),
    /// A JWK's `kid` does not identify its own key material.
    #[error("JWK kid {claimed:?} does not match its key material (expected {actual})")]
    KidMismatch {
        /// The kid the JWK claimed.
        claimed: String,
        /// The libtrust kid computed from the key.
        actual: String,
    },
}

/// An ES256 (P-256) private key plus its libtrust kid.
#[derive(Clone)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private scalar.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random P-256 key from the OS RNG.
    pub fn generate() -> Self {
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        // A generated key is a valid non-identity point, whose uncompressed encoding is
        // always 65 bytes, so this cannot fail; it does not depend on any input.
        Self::from_p256(key).expect("a freshly generated P-256 key always encodes")
    }

    /// Parses a PKCS#8 `PRIVATE KEY` PEM, or a SEC1 `EC PRIVATE KEY` PEM (as written by
    /// `openssl ecparam -genkey`; a leading `EC PARAMETERS` block is skipped).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let mut found = None;
        for block in pem_blocks(pem)? {
            let key = match block.label.as_str() {
                "PRIVATE KEY" => {
                    p256::ecdsa::SigningKey::from_pkcs8_der(&block.der).map_err(|e| {
                        KeyError::Unsupported(format!("PKCS#8 key is not a P-256 key: {e}"))
                    })?
                }
                "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&block.der)
                    .map_err(|_| KeyError::Unsupported("SEC1 key is not a P-256 key".into()))?
                    .into(),
                "EC PARAMETERS" => continue,
                other => return Err(KeyError::Pem(format!("unexpected PEM block {other:?}"))),
            };
            if found.replace(key).is_some() {
                return Err(KeyError::Pem("more than one private key".into()));
            }
        }
        let key = found.ok_or_else(|| KeyError::Pem("no private key block".into()))?;
        Self::from_p256(key)
    }

    /// Encodes the key as a PKCS#8 `PRIVATE KEY` PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Invalid(format!("encoding PKCS#8: {e}")))?;
        Ok(pem.as_str().to_owned())
    }

    /// The libtrust kid of the public half.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The public half, pinned to ES256.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs a JWS signing input (`header.payload`) and returns the base64url signature.
    pub(crate) fn sign_jws(&self, signing_input: &[u8]) -> Result<String, p256::ecdsa::Error> {
        let sig: p256::ecdsa::Signature = self.key.try_sign(signing_input)?;
        Ok(URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn from_p256(key: p256::ecdsa::SigningKey) -> Result<Self, KeyError> {
        let public = PublicKey::from_material(spki::ec_material(*key.verifying_key())?)?;
        Ok(Self { key, public })
    }
}

/// A verification key bound to exactly one algorithm (ES256 for P-256, RS256 for RSA),
/// with its libtrust kid. Cheap to clone.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<PublicKeyInner>,
}

struct PublicKeyInner {
    kid: String,
    spki_der: Vec<u8>,
    material: Material,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid())
            .field("alg", &self.algorithm())
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.spki_der == other.inner.spki_der
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// Parses every `PUBLIC KEY` (SPKI) block in `pem`; each may be P-256 or RSA.
    /// Any other block type is an error, so a misplaced certificate or private key is
    /// reported rather than silently ignored.
    pub fn from_pem(pem: &str) -> Result<Vec<PublicKey>, KeyError> {
        let mut keys = Vec::new();
        for block in pem_blocks(pem)? {
            if block.label != "PUBLIC KEY" {
                return Err(KeyError::Pem(format!(
                    "unexpected PEM block {:?} (expected \"PUBLIC KEY\")",
                    block.label
                )));
            }
            keys.push(Self::from_spki_der(&block.der)?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(keys)
    }

    /// Parses one DER SubjectPublicKeyInfo (P-256 or RSA).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        Self::from_material(spki::parse_spki(der)?)
    }

    /// The canonical SPKI as a `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.inner.spki_der);
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        // Base64 output is ASCII, so splitting the bytes into 64-char lines is lossless.
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// The canonical DER SubjectPublicKeyInfo the kid is computed from.
    pub fn spki_der(&self) -> &[u8] {
        &self.inner.spki_der
    }

    /// The libtrust kid of this key.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The only algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner.material {
            Material::Ec { .. } => Algorithm::ES256,
            Material::Rsa { .. } => Algorithm::RS256,
        }
    }

    pub(crate) fn material(&self) -> &Material {
        &self.inner.material
    }

    pub(crate) fn from_material(material: Material) -> Result<Self, KeyError> {
        let spki_der = material.spki_der()?;
        Ok(Self {
            inner: Arc::new(PublicKeyInner {
                kid: libtrust_kid(&spki_der),
                spki_der,
                material,
            }),
        })
    }

    /// Checks a JWS signature (base64url, as found in the token) over `signing_input`
    /// with this key's pinned algorithm.
    pub(crate) fn verify_jws(&self, signing_input: &[u8], signature_b64: &str) -> bool {
        match &self.inner.material {
            Material::Ec { key, .. } => {
                let Ok(raw) = URL_SAFE_NO_PAD.decode(signature_b64) else {
                    return false;
                };
                // JWS ES256 signatures are raw r||s (64 bytes), not DER.
                let Ok(sig) = p256::ecdsa::Signature::from_slice(&raw) else {
                    return false;
                };
                key.verify(signing_input, &sig).is_ok()
            }
            Material::Rsa { decoding, .. } => matches!(
                jsonwebtoken::crypto::verify(
                    signature_b64,
                    signing_input,
                    decoding,
                    Algorithm::RS256
                ),
                Ok(true)
            ),
        }
    }
}

/// One decoded PEM block.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// Splits PEM text into its blocks. Text outside blocks (comments, blank lines) is
/// ignored, as OpenSSL does; line width inside a block is not enforced.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let label_end = after_begin
            .find("-----")
            .ok_or_else(|| KeyError::Pem("unterminated BEGIN line".into()))?;
        let label = &after_begin[..label_end];
        let body_and_rest = &after_begin[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_and_rest
            .find(&end_marker)
            .ok_or_else(|| KeyError::Pem(format!("missing END line for {label:?}")))?;
        let body: String = body_and_rest[..body_end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| KeyError::Pem(format!("bad base64 in {label:?} block")))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
        rest = &body_and_rest[body_end + end_marker.len()..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_round_trips_through_pkcs8_pem() {
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn public_pem_round_trips() {
        let key = SigningKey::generate().public_key();
        let pem = key.to_pem();
        let back = PublicKey::from_pem(&pem).unwrap();
        assert_eq!(back, vec![key.clone()]);
        assert_eq!(back[0].kid(), key.kid());
        assert_eq!(back[0].algorithm(), Algorithm::ES256);
    }

    #[test]
    fn pem_errors() {
        assert!(matches!(PublicKey::from_pem(""), Err(KeyError::NoKeys)));
        assert!(matches!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n"),
            Err(KeyError::Pem(_))
        ));
        assert!(matches!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::Pem(_))
        ));
        let private = SigningKey::generate().to_pkcs8_pem().unwrap();
        assert!(matches!(
            PublicKey::from_pem(&private),
            Err(KeyError::Pem(_))
        ));
        assert!(SigningKey::from_pkcs8_pem("nothing").is_err());
    }

    #[test]
    fn signs_and_verifies() {
        let key = SigningKey::generate();
        let sig = key.sign_jws(b"a.b").unwrap();
        assert!(key.public_key().verify_jws(b"a.b", &sig));
        assert!(!key.public_key().verify_jws(b"a.c", &sig));
        assert!(!key.public_key().verify_jws(b"a.b", "not-base64!"));
        assert!(!key.public_key().verify_jws(b"a.b", ""));
    }
}
