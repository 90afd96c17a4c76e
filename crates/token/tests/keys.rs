//! Key loading, libtrust kid vectors, and JWK handling against OpenSSL-generated fixtures.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_token::{Algorithm, KeyError, PublicKey, SigningKey, Verifier, jwks, libtrust_kid};
use sha2::{Digest, Sha256};

const EC_PKCS8: &str = include_str!("fixtures/ec_pkcs8.pem");
const EC_SEC1: &str = include_str!("fixtures/ec_sec1.pem");
const EC_PUB: &str = include_str!("fixtures/ec_pub.pem");
const RSA_PUB: &str = include_str!("fixtures/rsa_pub.pem");

/// Computed with Python's hashlib/base64 from OpenSSL's DER output (see fixtures/README.md).
const EC_KID: &str = "CBNH:WSMM:7VGS:W627:K474:AY4O:LB3D:4ZBF:UX32:GMPK:K5EV:7SPH";
const RSA_KID: &str = "UV72:UHE5:VJ4H:4ESY:A2I5:CXLH:UAJ3:WK7Y:UQDW:2CC2:OMLU:HAUG";

/// An RFC 4648 base32 encoder written out longhand, independent of `data-encoding`.
fn base32_longhand(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = String::new();
    for b in bytes {
        bits.push_str(&format!("{b:08b}"));
    }
    bits.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let s = std::str::from_utf8(chunk).unwrap();
            let idx = usize::from_str_radix(&format!("{s:0<5}"), 2).unwrap();
            ALPHABET[idx] as char
        })
        .collect()
}

#[test]
fn kid_matches_openssl_python_vectors() {
    assert_eq!(SigningKey::from_pkcs8_pem(EC_PKCS8).unwrap().kid(), EC_KID);
    assert_eq!(SigningKey::from_pkcs8_pem(EC_SEC1).unwrap().kid(), EC_KID);
    let ec = PublicKey::from_pem(EC_PUB).unwrap();
    assert_eq!(ec.len(), 1);
    assert_eq!(ec[0].kid(), EC_KID);
    assert_eq!(ec[0].algorithm(), Algorithm::ES256);
    let rsa = PublicKey::from_pem(RSA_PUB).unwrap();
    assert_eq!(rsa[0].kid(), RSA_KID);
    assert_eq!(rsa[0].algorithm(), Algorithm::RS256);
}

#[test]
fn kid_matches_longhand_computation() {
    let key = SigningKey::generate().public_key();
    let digest = Sha256::digest(key.spki_der());
    let b32 = base32_longhand(&digest[..30]);
    let expected: Vec<String> = b32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert_eq!(key.kid(), expected.join(":"));
    assert_eq!(libtrust_kid(key.spki_der()), key.kid());

    let groups: Vec<&str> = key.kid().split(':').collect();
    assert_eq!(groups.len(), 12);
    assert!(groups.iter().all(|g| {
        g.len() == 4
            && g.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    }));
}

#[test]
fn public_pem_re_encodes_identically() {
    // Our canonical SPKI must equal OpenSSL's, or kids would disagree with other tools.
    assert_eq!(PublicKey::from_pem(EC_PUB).unwrap()[0].to_pem(), EC_PUB);
    assert_eq!(PublicKey::from_pem(RSA_PUB).unwrap()[0].to_pem(), RSA_PUB);
}

#[test]
fn pem_file_with_two_keys() {
    let bundle = format!("# trusted token keys\n{EC_PUB}\n{RSA_PUB}");
    let keys = PublicKey::from_pem(&bundle).unwrap();
    let kids: Vec<&str> = keys.iter().map(PublicKey::kid).collect();
    assert_eq!(kids, [EC_KID, RSA_KID]);

    let dir = std::env::temp_dir().join(format!("berth-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.pem");
    std::fs::write(&path, &bundle).unwrap();
    let verifier = Verifier::from_pem_file(&path, "auth", "reg").unwrap();
    assert_eq!(verifier.issuer(), "auth");
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = Verifier::from_pem_file(&dir.join("nope.pem"), "auth", "reg");
    assert!(matches!(missing, Err(KeyError::Io { .. })));
}

#[test]
fn signing_key_pem_round_trip() {
    let key = SigningKey::from_pkcs8_pem(EC_SEC1).unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    assert_eq!(pem.trim(), EC_PKCS8.trim());
    // An RSA private key is not an ES256 signing key.
    let rsa_private = include_str!("fixtures/rsa_private.pem");
    assert!(SigningKey::from_pkcs8_pem(rsa_private).is_err());
    // Private key debug output must not leak the scalar.
    assert!(!format!("{key:?}").contains("secret"));
}

#[test]
fn rsa_jwk_round_trips_with_kid_check() {
    let key = PublicKey::from_pem(RSA_PUB).unwrap().remove(0);
    let jwk = key.to_jwk();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["e"], "AQAB");
    assert_eq!(jwk["kid"], RSA_KID);
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256
    );
    assert_eq!(PublicKey::from_jwk(&jwk).unwrap(), key);

    let mut forged = jwk.clone();
    forged["kid"] = EC_KID.into();
    assert!(matches!(
        PublicKey::from_jwk(&forged),
        Err(KeyError::KidMismatch { .. })
    ));
    let mut wrong_alg = jwk;
    wrong_alg["alg"] = "ES256".into();
    assert!(PublicKey::from_jwk(&wrong_alg).is_err());
}

#[test]
fn jwks_lists_all_keys() {
    let mut keys = PublicKey::from_pem(EC_PUB).unwrap();
    keys.extend(PublicKey::from_pem(RSA_PUB).unwrap());
    let doc = jwks(&keys);
    let entries = doc["keys"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kid"], EC_KID);
    assert_eq!(entries[1]["kid"], RSA_KID);
}
