//! End-to-end issue → verify behaviour, including the classic JWT attacks.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_token::{
    Access, AccessMeta, Audience, Claims, Issuer, KeySource, PublicKey, SigningKey, Verifier,
    VerifyError,
};
use serde_json::json;

const RSA_PRIVATE: &str = include_str!("fixtures/rsa_private.pem");
const RSA_PUB: &str = include_str!("fixtures/rsa_pub.pem");

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn setup() -> (Issuer, Verifier) {
    let issuer = Issuer::new(
        SigningKey::generate(),
        "berth-auth",
        "berth-registry",
        Duration::from_secs(300),
    );
    let verifier = Verifier::new(
        KeySource::Static(vec![issuer.public_key()]),
        "berth-auth",
        "berth-registry",
    );
    (issuer, verifier)
}

fn claims_at(issuer: &Issuer, iat: i64, nbf: i64, exp: i64) -> Claims {
    Claims {
        iss: issuer.issuer().to_owned(),
        sub: Some("alice".into()),
        aud: Audience::single(issuer.audience()),
        iat,
        nbf,
        exp,
        jti: "test".into(),
        auth_type: None,
        access: vec![Access::repository("group/app", &["pull"])],
    }
}

fn b64json(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn round_trip() {
    let (issuer, verifier) = setup();
    let mut access = Access::repository("group/app", &["pull", "push"]);
    access.meta = Some(AccessMeta {
        project_path: Some("group/app".into()),
        project_id: Some(42),
        root_namespace_id: Some(7),
        tag_immutable_patterns: Some(vec!["^v".into()]),
    });
    let (token, issued) = issuer
        .issue(
            Some("alice".into()),
            Some("gitlab_or_ldap".into()),
            vec![access],
        )
        .unwrap();
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(*verified, issued);
    assert!(verified.allows("repository", "group/app", "push"));
    assert_eq!(verified.meta_for("group/app").unwrap().project_id, Some(42));
    let again = verifier.verify(&token).await.unwrap();
    assert!(
        Arc::ptr_eq(&verified, &again),
        "second verify is a cache hit"
    );
}

#[tokio::test]
async fn expiry_and_leeway() {
    let (issuer, verifier) = setup();
    let t = now();
    let expired = issuer
        .sign(&claims_at(&issuer, t - 600, t - 600, t - 120))
        .unwrap();
    assert_eq!(verifier.verify(&expired).await, Err(VerifyError::Expired));
    let within_leeway = issuer
        .sign(&claims_at(&issuer, t - 600, t - 600, t - 30))
        .unwrap();
    assert!(verifier.verify(&within_leeway).await.is_ok());

    let strict = Verifier::new(
        KeySource::Static(vec![issuer.public_key()]),
        "berth-auth",
        "berth-registry",
    )
    .with_leeway(Duration::from_secs(10));
    let fresh = issuer
        .sign(&claims_at(&issuer, t - 600, t - 600, t - 30))
        .unwrap();
    assert_eq!(strict.verify(&fresh).await, Err(VerifyError::Expired));
}

#[tokio::test]
async fn not_yet_valid() {
    let (issuer, verifier) = setup();
    let t = now();
    let future = issuer
        .sign(&claims_at(&issuer, t, t + 120, t + 600))
        .unwrap();
    assert_eq!(
        verifier.verify(&future).await,
        Err(VerifyError::NotYetValid)
    );
    let slightly_future = issuer
        .sign(&claims_at(&issuer, t, t + 30, t + 600))
        .unwrap();
    assert!(verifier.verify(&slightly_future).await.is_ok());
}

#[tokio::test]
async fn audience_and_issuer() {
    let (issuer, verifier) = setup();
    let t = now();
    let mut c = claims_at(&issuer, t, t, t + 300);
    c.aud = Audience::single("someone-else");
    let token = issuer.sign(&c).unwrap();
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::WrongAudience)
    );

    c.aud = Audience(vec!["other".into(), "berth-registry".into()]);
    let token = issuer.sign(&c).unwrap();
    assert!(
        verifier.verify(&token).await.is_ok(),
        "array aud containing ours"
    );

    let mut c = claims_at(&issuer, t, t, t + 300);
    c.iss = "evil".into();
    let token = issuer.sign(&c).unwrap();
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::WrongIssuer));
}

#[tokio::test]
async fn unknown_kid() {
    let (_, verifier) = setup();
    let stranger = Issuer::new(
        SigningKey::generate(),
        "berth-auth",
        "berth-registry",
        Duration::from_secs(60),
    );
    let (token, _) = stranger.issue(None, None, vec![]).unwrap();
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
}

#[tokio::test]
async fn embedded_jwk_header_is_ignored() {
    // The attacker signs with their own key and ships it in the header (jwk/x5c); only
    // the kid may select a key, and theirs is not trusted.
    let (_, verifier) = setup();
    let attacker = Issuer::new(
        SigningKey::generate(),
        "berth-auth",
        "berth-registry",
        Duration::from_secs(60),
    );
    let (token, _) = attacker.issue(None, None, vec![]).unwrap();
    let mut parts = token.split('.');
    let (_, payload, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header = b64json(&json!({
        "alg": "ES256", "typ": "JWT", "kid": attacker.public_key().kid(),
        "jwk": attacker.public_key().to_jwk(), "x5c": ["AAAA"],
    }));
    let forged = format!("{header}.{payload}.{sig}");
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::UnknownKey));
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let (issuer, verifier) = setup();
    let t = now();
    let claims = serde_json::to_value(claims_at(&issuer, t, t, t + 300)).unwrap();
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "typ": "JWT", "kid": issuer.public_key().kid()}),
        json!({"alg": "None", "kid": issuer.public_key().kid()}),
    ] {
        let token = format!("{}.{}.", b64json(&header), b64json(&claims));
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::AlgorithmNotAllowed | VerifyError::Malformed
            ),
            "{header}: {err:?}"
        );
    }
}

#[tokio::test]
async fn hmac_key_confusion_is_rejected() {
    // Classic confusion: HS256 with the verifier's public key PEM as the HMAC secret.
    let (issuer, verifier) = setup();
    let t = now();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(issuer.public_key().kid().to_owned());
    let secret = issuer.public_key().to_pem();
    let token = jsonwebtoken::encode(
        &header,
        &claims_at(&issuer, t, t, t + 300),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn tampered_payload_is_bad_signature() {
    let (issuer, verifier) = setup();
    let (token, claims) = issuer
        .issue(
            Some("alice".into()),
            None,
            vec![Access::repository("group/app", &["pull"])],
        )
        .unwrap();
    let mut parts = token.split('.');
    let (header, _, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut evil = claims;
    evil.access = vec![Access::repository("group/app", &["*"])];
    let forged = format!(
        "{header}.{}.{sig}",
        b64json(&serde_json::to_value(&evil).unwrap())
    );
    assert_eq!(
        verifier.verify(&forged).await,
        Err(VerifyError::BadSignature)
    );
}

#[tokio::test]
async fn malformed_inputs() {
    let (issuer, verifier) = setup();
    let (token, _) = issuer.issue(None, None, vec![]).unwrap();
    for bad in [
        String::new(),
        "abc".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        format!("{token}.extra"),
        "!!!.e30.".into(),
        format!("{}.e30.", URL_SAFE_NO_PAD.encode("not json")),
    ] {
        assert_eq!(
            verifier.verify(&bad).await,
            Err(VerifyError::Malformed),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn rs256_keys_are_pinned_to_rs256() {
    let rsa = PublicKey::from_pem(RSA_PUB).unwrap().remove(0);
    let ec_issuer = Issuer::new(
        SigningKey::generate(),
        "berth-auth",
        "berth-registry",
        Duration::from_secs(60),
    );
    let verifier = Verifier::new(
        KeySource::Static(vec![rsa.clone(), ec_issuer.public_key()]),
        "berth-auth",
        "berth-registry",
    );
    let t = now();
    let claims = claims_at(&ec_issuer, t, t, t + 300);
    let rsa_key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(rsa.kid().to_owned());
    let good = jsonwebtoken::encode(&header, &claims, &rsa_key).unwrap();
    assert_eq!(*verifier.verify(&good).await.unwrap(), claims);

    // Same RSA key, different RSA algorithm: the key is pinned to RS256.
    header.alg = jsonwebtoken::Algorithm::PS256;
    let pss = jsonwebtoken::encode(&header, &claims, &rsa_key).unwrap();
    assert_eq!(
        verifier.verify(&pss).await,
        Err(VerifyError::AlgorithmNotAllowed)
    );

    // RS256 header naming the EC key's kid.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(ec_issuer.public_key().kid().to_owned());
    let cross = jsonwebtoken::encode(&header, &claims, &rsa_key).unwrap();
    assert_eq!(
        verifier.verify(&cross).await,
        Err(VerifyError::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn error_messages_do_not_echo_the_token() {
    let (issuer, verifier) = setup();
    let (token, _) = issuer.issue(None, None, vec![]).unwrap();
    let mut broken = token.clone();
    broken.pop();
    let err = verifier.verify(&broken).await.unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains(&broken[..20]), "{msg}");
}
