//! DER plumbing for verification keys: parsing and canonically re-encoding the
//! SubjectPublicKeyInfo of P-256 and RSA public keys.
//!
//! Key ids are computed over the *canonical* SPKI encoding (uncompressed EC point,
//! `rsaEncryption` with NULL parameters), which is what Go's `x509.MarshalPKIXPublicKey`
//! produces and therefore what libtrust-based issuers hash. Canonicalising also means a
//! key yields the same kid whether it arrived as PEM or as a JWK.

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use p256::pkcs8::der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, UintRef};
use p256::pkcs8::der::{
    Decode, Encode, EncodeValue, FixedTag, Length, Reader, SliceReader, Tag, Writer,
};
use p256::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use crate::keys::KeyError;

/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// DER prefix of a P-256 SPKI (SEQUENCE, AlgorithmIdentifier{id-ecPublicKey, prime256v1},
/// BIT STRING header); the 65-byte uncompressed point follows. Fixed-size, so encoding
/// a P-256 key can never fail.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// RSA moduli outside this range are refused: smaller ones are breakable, larger ones
/// are rejected by the RustCrypto RSA verifier anyway.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;

/// The parsed key material of a verification key.
#[derive(Clone)]
pub(crate) enum Material {
    /// A P-256 key; `point` is the 65-byte uncompressed SEC1 encoding.
    Ec { key: VerifyingKey, point: [u8; 65] },
    /// An RSA key as big-endian modulus and exponent without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        decoding: jsonwebtoken::DecodingKey,
    },
}

impl Material {
    /// The canonical DER SubjectPublicKeyInfo of this key.
    pub(crate) fn spki_der(&self) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Ec { point, .. } => {
                let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + point.len());
                der.extend_from_slice(&P256_SPKI_PREFIX);
                der.extend_from_slice(point);
                Ok(der)
            }
            Self::Rsa { n, e, .. } => rsa_spki_der(n, e),
        }
    }
}

/// Builds EC material from a P-256 verifying key.
pub(crate) fn ec_material(key: VerifyingKey) -> Result<Material, KeyError> {
    let encoded = key.to_encoded_point(false);
    let point: [u8; 65] = encoded
        .as_bytes()
        .try_into()
        .map_err(|_| KeyError::Invalid("EC point is not a 65-byte uncompressed point".into()))?;
    Ok(Material::Ec { key, point })
}

/// Builds RSA material from big-endian modulus and exponent, enforcing sane sizes.
pub(crate) fn rsa_material(n: &[u8], e: &[u8]) -> Result<Material, KeyError> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    };
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(KeyError::Unsupported(format!(
            "RSA modulus of {bits} bits (need {RSA_MIN_BITS}..={RSA_MAX_BITS})"
        )));
    }
    // The exponent must be an odd number in [3, 2^33 - 1], the range the RSA verifier accepts.
    let exp_ok = e.len() <= 8 && {
        let mut buf = [0u8; 8];
        buf[8 - e.len()..].copy_from_slice(e);
        let v = u64::from_be_bytes(buf);
        v >= 3 && v % 2 == 1 && v < (1 << 33)
    };
    if !exp_ok {
        return Err(KeyError::Unsupported(
            "RSA public exponent out of range".into(),
        ));
    }
    Ok(Material::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
        decoding: jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e),
    })
}

/// Parses a DER SubjectPublicKeyInfo holding a P-256 or RSA key.
pub(crate) fn parse_spki(der: &[u8]) -> Result<Material, KeyError> {
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| KeyError::Invalid(format!("not a SubjectPublicKeyInfo: {e}")))?;
    let oid = spki.algorithm.oid;
    if oid == EC_PUBLIC_KEY_OID {
        // p256 checks the namedCurve parameter, so P-384 etc. are refused here.
        let key = VerifyingKey::from_public_key_der(der)
            .map_err(|e| KeyError::Unsupported(format!("EC key is not a valid P-256 key: {e}")))?;
        ec_material(key)
    } else if oid == RSA_ENCRYPTION_OID {
        let pkcs1 = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Invalid("RSA key bit string has unused bits".into()))?;
        let (n, e) = parse_pkcs1(pkcs1)
            .map_err(|e| KeyError::Invalid(format!("invalid RSAPublicKey: {e}")))?;
        rsa_material(n.as_bytes(), e.as_bytes())
    } else {
        Err(KeyError::Unsupported(format!("key algorithm {oid}")))
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
struct RsaPublicKeyDer<'a> {
    n: UintRef<'a>,
    e: UintRef<'a>,
}

impl FixedTag for RsaPublicKeyDer<'_> {
    const TAG: Tag = Tag::Sequence;
}

impl EncodeValue for RsaPublicKeyDer<'_> {
    fn value_len(&self) -> p256::pkcs8::der::Result<Length> {
        self.n.encoded_len()? + self.e.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> p256::pkcs8::der::Result<()> {
        self.n.encode(writer)?;
        self.e.encode(writer)
    }
}

fn parse_pkcs1(der: &[u8]) -> p256::pkcs8::der::Result<(UintRef<'_>, UintRef<'_>)> {
    let mut reader = SliceReader::new(der)?;
    let pair = reader.sequence(|r| Ok((UintRef::decode(r)?, UintRef::decode(r)?)))?;
    reader.finish(pair)
}

fn rsa_spki_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>, KeyError> {
    let encode = || -> p256::pkcs8::der::Result<Vec<u8>> {
        let pkcs1 = RsaPublicKeyDer {
            n: UintRef::new(n)?,
            e: UintRef::new(e)?,
        }
        .to_der()?;
        SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: RSA_ENCRYPTION_OID,
                parameters: Some(AnyRef::NULL),
            },
            subject_public_key: BitStringRef::from_bytes(&pkcs1)?,
        }
        .to_der()
    };
    encode().map_err(|e| KeyError::Invalid(format!("encoding RSA key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey;

    #[test]
    fn ec_canonical_spki_matches_p256_encoder() {
        let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let vk = *sk.verifying_key();
        let ours = ec_material(vk).unwrap().spki_der().unwrap();
        let theirs = vk.to_public_key_der().unwrap();
        assert_eq!(ours, theirs.as_bytes());
        assert!(matches!(parse_spki(&ours), Ok(Material::Ec { .. })));
    }

    #[test]
    fn rsa_rejects_small_modulus_and_bad_exponent() {
        let small = [0xffu8; 128];
        assert!(rsa_material(&small, &[1, 0, 1]).is_err());
        let ok_n = [0xffu8; 256];
        assert!(rsa_material(&ok_n, &[1, 0, 1]).is_ok());
        assert!(rsa_material(&ok_n, &[2]).is_err());
        assert!(rsa_material(&ok_n, &[1]).is_err());
    }

    #[test]
    fn rsa_spki_round_trips() {
        let mut n = vec![0u8, 0xc0];
        n.extend_from_slice(&[0x11; 255]);
        let m = rsa_material(&n, &[1, 0, 1]).unwrap();
        let der = m.spki_der().unwrap();
        match parse_spki(&der).unwrap() {
            Material::Rsa { n: n2, e, .. } => {
                assert_eq!(n2, &n[1..]);
                assert_eq!(e, vec![1, 0, 1]);
            }
            Material::Ec { .. } => panic!("expected RSA"),
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse_spki(b"not der").is_err());
        assert!(parse_spki(&[]).is_err());
    }
}
