//! Token enforcement at the registry: the exact challenge, scope checks per method,
//! and every way a token can be invalid.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_token::{Access, Audience, Claims, Issuer, SigningKey};
use reqwest::StatusCode;

use crate::both;
use crate::support::*;

const NAME: &str = "acme/platform/api";

fn claims(env: &Env, f: impl FnOnce(&mut Claims)) -> String {
    let (_, mut c) = env
        .keys
        .issuer
        .issue(
            Some("u".into()),
            None,
            vec![Access::repository(NAME, &["pull", "push"])],
        )
        .unwrap();
    f(&mut c);
    env.keys.issuer.sign(&c).unwrap()
}

async fn tags_status(env: &Env, token: Option<&str>) -> (StatusCode, String) {
    let mut req = env.http.get(format!("{}/v2/{NAME}/tags/list", env.url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status(), challenge)
}

both!(challenges_and_scopes, |env| {
    push_image(&env, NAME, "v1", "x").await;
    let realm = env.token_server.realm();
    // No token at all: the exact challenge.
    let (status, challenge) = tags_status(&env, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{realm}\",service=\"container_registry\",scope=\"repository:{NAME}:pull\""
        )
    );
    // GET /v2/ without a token: the challenge without scope; with any valid token: 200.
    let r = env
        .http
        .get(format!("{}/v2/", env.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer realm=\"{realm}\",service=\"container_registry\"").as_str()
    );
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let r = env
        .get("/v2/", env.keys.token_for(vec![]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A token for another repository.
    let other = env.token("acme/platform/other", &["pull", "push", "delete"]);
    let (status, challenge) = tags_status(&env, Some(&other)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{realm}\",service=\"container_registry\",scope=\"repository:{NAME}:pull\",error=\"insufficient_scope\""
        )
    );
    let r = env
        .get(&format!("/v2/{NAME}/tags/list"), &other)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    // Pull-only token cannot start an upload; the challenge asks for pull,push.
    let r = env
        .post(
            &format!("/v2/{NAME}/blobs/uploads/"),
            env.token(NAME, &["pull"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(&format!("scope=\"repository:{NAME}:pull,push\""))
    );
    // A mount names both scopes.
    let r = env
        .http
        .post(format!(
            "{}/v2/{NAME}/blobs/uploads/?mount=sha256:{}&from=acme/other/x",
            env.url(),
            "a".repeat(64)
        ))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(&format!(
                "scope=\"repository:{NAME}:pull,push repository:acme/other/x:pull\""
            ))
    );
    // `*` grants everything.
    let star = env.token(NAME, &["*"]);
    assert_eq!(tags_status(&env, Some(&star)).await.0, StatusCode::OK);
});

both!(invalid_tokens, |env| {
    push_image(&env, NAME, "v1", "x").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut bad: Vec<(&str, String)> = vec![
        ("expired", claims(&env, |c| c.exp = now - 120)),
        ("not yet valid", claims(&env, |c| c.nbf = now + 120)),
        (
            "wrong audience",
            claims(&env, |c| c.aud = Audience::single("someone_else")),
        ),
        ("wrong issuer", claims(&env, |c| c.iss = "evil".into())),
    ];
    // Unknown kid: signed by a key the registry does not trust.
    let stranger = Issuer::new(
        SigningKey::generate(),
        berth_test_support::tokens::ISSUER,
        "container_registry",
        Duration::from_secs(300),
    );
    bad.push((
        "unknown kid",
        stranger
            .issue(None, None, vec![Access::repository(NAME, &["pull"])])
            .unwrap()
            .0,
    ));
    // alg none, carrying the trusted kid.
    let good = env.token(NAME, &["pull"]);
    let parts: Vec<&str> = good.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let none_header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    bad.push((
        "alg none",
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(none_header.to_string()),
            parts[1]
        ),
    ));
    // Tampered payload: grant push on another repository, keep the signature.
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["access"][0]["actions"] = serde_json::json!(["pull", "push", "delete"]);
    bad.push((
        "tampered",
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        ),
    ));
    bad.push(("garbage", "not-a-jwt".into()));
    for (what, token) in bad {
        let (status, challenge) = tags_status(&env, Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            challenge.ends_with(",error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    // 30 s past expiry is inside the 60 s leeway.
    let lenient = claims(&env, |c| c.exp = now - 30);
    assert_eq!(tags_status(&env, Some(&lenient)).await.0, StatusCode::OK);
    assert_eq!(tags_status(&env, Some(&good)).await.0, StatusCode::OK);
});
