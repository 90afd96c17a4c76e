//! JSON Web Key (RFC 7517) encoding of verification keys and JWKS documents.
//!
//! Decoding binds the JWK's `kid` to its key material: a key id is accepted only if it
//! equals the libtrust kid computed from the key itself. Trusting a kid chosen by whoever
//! wrote the document is how CVE-2025-24976 let one key impersonate another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use p256::EncodedPoint;
use p256::ecdsa::VerifyingKey;
use serde_json::{Map, Value, json};

use crate::keys::{KeyError, PublicKey};
use crate::spki::{self, Material};

impl PublicKey {
    /// The key as a JWK with `kid`, `alg`, `use: "sig"` and `kty/crv/x/y` (EC) or
    /// `kty/n/e` (RSA).
    pub fn to_jwk(&self) -> Value {
        let mut jwk = match self.material() {
            Material::Ec { point, .. } => json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
            Material::Rsa { n, e, .. } => json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(n),
                "e": URL_SAFE_NO_PAD.encode(e),
            }),
        };
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), Value::from(self.kid()));
            obj.insert("alg".into(), Value::from(alg_name(self.algorithm())));
            obj.insert("use".into(), Value::from("sig"));
        }
        jwk
    }

    /// Parses a public JWK (EC P-256 or RSA). A present `kid` must equal the libtrust
    /// kid of the key material; a missing one is computed. `alg`, if present, must be the
    /// key's pinned algorithm, and `use`, if present, must be `sig`. JWKs carrying private
    /// key parameters are refused outright.
    pub fn from_jwk(v: &Value) -> Result<PublicKey, KeyError> {
        let obj = v
            .as_object()
            .ok_or_else(|| KeyError::Jwk("not a JSON object".into()))?;
        if obj.contains_key("d") {
            return Err(KeyError::Jwk("contains private key material".into()));
        }
        if obj.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
            return Err(KeyError::Jwk("\"use\" is not \"sig\"".into()));
        }
        let material = match str_field(obj, "kty")? {
            "EC" => {
                if str_field(obj, "crv")? != "P-256" {
                    return Err(KeyError::Unsupported("EC curve other than P-256".into()));
                }
                let x = b64_field(obj, "x")?;
                let y = b64_field(obj, "y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::Jwk("P-256 coordinates must be 32 bytes".into()));
                }
                let point = EncodedPoint::from_affine_coordinates(
                    x.as_slice().into(),
                    y.as_slice().into(),
                    false,
                );
                let key = VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| KeyError::Invalid("EC point is not on P-256".into()))?;
                spki::ec_material(key)?
            }
            "RSA" => spki::rsa_material(&b64_field(obj, "n")?, &b64_field(obj, "e")?)?,
            other => return Err(KeyError::Unsupported(format!("JWK kty {other:?}"))),
        };
        let key = PublicKey::from_material(material)?;
        let expected_alg = alg_name(key.algorithm());
        if obj
            .get("alg")
            .is_some_and(|a| a.as_str() != Some(expected_alg))
        {
            return Err(KeyError::Jwk(format!(
                "\"alg\" does not match a {expected_alg} key"
            )));
        }
        if let Some(kid) = obj.get("kid") {
            let claimed = kid
                .as_str()
                .ok_or_else(|| KeyError::Jwk("\"kid\" is not a string".into()))?;
            if claimed != key.kid() {
                return Err(KeyError::KidMismatch {
                    claimed: claimed.to_owned(),
                    actual: key.kid().to_owned(),
                });
            }
        }
        Ok(key)
    }
}

/// A JWKS document (`{"keys": [...]}`) for `keys`.
pub fn jwks(keys: &[PublicKey]) -> Value {
    json!({ "keys": keys.iter().map(PublicKey::to_jwk).collect::<Vec<_>>() })
}

/// Parses a JWKS document, returning the usable keys and the errors of the skipped ones.
///
/// One bad entry must not take down verification with every other key, so entries are
/// judged one by one; only a document that is not `{"keys": [...]}` is an error.
pub fn parse_jwks(doc: &Value) -> Result<(Vec<PublicKey>, Vec<KeyError>), KeyError> {
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| KeyError::Jwk("JWKS has no \"keys\" array".into()))?;
    let mut keys = Vec::with_capacity(entries.len());
    let mut skipped = Vec::new();
    for entry in entries {
        match PublicKey::from_jwk(entry) {
            Ok(k) => keys.push(k),
            Err(e) => skipped.push(e),
        }
    }
    Ok((keys, skipped))
}

/// Namespace for JWKS helpers, for callers that prefer `Jwks::jwks_json(..)`.
pub struct Jwks;

impl Jwks {
    /// Same as [`jwks`]: a `{"keys": [...]}` document for `keys`.
    pub fn jwks_json(keys: &[PublicKey]) -> Value {
        jwks(keys)
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        // Keys are only ever pinned to ES256 or RS256.
        _ => "ES256",
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, KeyError> {
    obj.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| KeyError::Jwk(format!("missing string field {name:?}")))
}

fn b64_field(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(str_field(obj, name)?)
        .map_err(|_| KeyError::Jwk(format!("field {name:?} is not base64url")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    #[test]
    fn ec_jwk_round_trips() {
        let key = SigningKey::generate().public_key();
        let jwk = key.to_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.kid());
        let back = PublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.kid(), key.kid());
    }

    #[test]
    fn rejects_kid_that_does_not_match_key() {
        let a = SigningKey::generate().public_key();
        let b = SigningKey::generate().public_key();
        let mut jwk = a.to_jwk();
        jwk["kid"] = Value::from(b.kid());
        match PublicKey::from_jwk(&jwk) {
            Err(KeyError::KidMismatch { claimed, actual }) => {
                assert_eq!(claimed, b.kid());
                assert_eq!(actual, a.kid());
            }
            other => panic!("expected KidMismatch, got {other:?}"),
        }
    }

    #[test]
    fn missing_kid_is_computed() {
        let key = SigningKey::generate().public_key();
        let mut jwk = key.to_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap().kid(), key.kid());
    }

    #[test]
    fn rejects_inconsistent_jwks() {
        let key = SigningKey::generate().public_key();
        let cases: Vec<(&str, Value)> = vec![
            ("alg", Value::from("RS256")),
            ("alg", Value::from("none")),
            ("use", Value::from("enc")),
            ("crv", Value::from("P-384")),
            ("kty", Value::from("oct")),
            ("x", Value::from("AAAA")),
            ("d", Value::from("AAAA")),
            ("kid", Value::from(5)),
        ];
        for (field, value) in cases {
            let mut jwk = key.to_jwk();
            jwk[field] = value;
            assert!(PublicKey::from_jwk(&jwk).is_err(), "{field} accepted");
        }
        assert!(PublicKey::from_jwk(&Value::from("x")).is_err());
    }

    #[test]
    fn jwks_document_and_parse_skips_bad_entries() {
        let keys = vec![
            SigningKey::generate().public_key(),
            SigningKey::generate().public_key(),
        ];
        let mut doc = jwks(&keys);
        assert_eq!(doc, Jwks::jwks_json(&keys));
        doc["keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({"kty": "EC"}));
        let (parsed, skipped) = parse_jwks(&doc).unwrap();
        assert_eq!(parsed, keys);
        assert_eq!(skipped.len(), 1);
        assert!(parse_jwks(&json!({})).is_err());
    }
}
