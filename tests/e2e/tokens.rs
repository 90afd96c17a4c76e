//! `/jwt/auth` against the real services: the JWT's header and claims (GitLab-compatible) checked
//! independently of Berth's own code, key rotation with real issued tokens, `docker login`
//! answers (200/401/403), and failed-login rate limits (429).

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::stack::{Options, Stack};
use crate::stack_test;

/// A public group `g` with a project `g/app` whose registry follows visibility, a
/// Developer `dev` with a `read_registry,write_registry` PAT. Returns (project id, group
/// id, PAT).
async fn fixture(stack: &Stack) -> (i64, i64, String) {
    let group = stack.create_group("g", None).await;
    let gid = group["id"].as_i64().unwrap();
    let project = stack.create_project(gid, "app", "private", "enabled").await;
    let pid = project["id"].as_i64().unwrap();
    let dev = stack.create_user("dev", "dev-password-123").await;
    stack.add_member("projects", pid, dev, 30).await;
    let pat = stack.pat(dev, &["read_registry", "write_registry"]).await;
    (pid, gid, pat)
}

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).expect("jwt segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url")).expect("json")
}

/// The libtrust fingerprint of a P-256 JWK, computed here from first principles: the DER
/// SubjectPublicKeyInfo (fixed P-256 prefix + uncompressed point), SHA-256, 30 bytes,
/// base32, groups of four.
fn libtrust_of_jwk(jwk: &Value) -> String {
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    let mut der = hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    der.push(0x04);
    der.extend_from_slice(&x);
    der.extend_from_slice(&y);
    let digest = Sha256::digest(&der);
    let b32 = data_encoding::BASE32_NOPAD.encode(&digest[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

async fn jwks(stack: &Stack) -> Vec<Value> {
    let doc: Value = stack
        .http
        .get(format!("{}/.well-known/jwks.json", stack.auth.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["keys"].as_array().unwrap().clone()
}

/// Verify `token` with the JWKS key its `kid` names, using jsonwebtoken (not Berth's code).
async fn verify_independently(stack: &Stack, token: &str) -> Value {
    let header = part(token, 0);
    let kid = header["kid"].as_str().unwrap();
    let keys = jwks(stack).await;
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the token's kid is published");
    assert_eq!(libtrust_of_jwk(jwk), kid, "kid is the libtrust fingerprint");
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["container_registry"]);
    v.set_issuer(&["berth"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("signature and claims verify")
        .claims
}

stack_test!(jwt_claims_verify_independently, |stack| {
    let (pid, gid, pat) = fixture(&stack).await;
    let token = stack
        .registry_token(
            Some(("dev", &pat)),
            &["repository:g/app/api:pull,push", "repository:g/other:pull"],
        )
        .await;
    let header = part(&token, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    let claims = verify_independently(&stack, &token).await;
    let now = chrono::Utc::now().timestamp();
    let iat = claims["iat"].as_i64().unwrap();
    assert!((now - iat).abs() < 30, "iat is now");
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat - 5);
    assert_eq!(
        claims["exp"].as_i64().unwrap(),
        iat + 300,
        "BERTH_TOKEN_TTL 5m"
    );
    assert_eq!(claims["iss"], "berth");
    assert_eq!(claims["aud"], "container_registry");
    assert_eq!(claims["sub"], "dev");
    assert_eq!(claims["auth_type"], "personal_access_token");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36, "uuid jti");
    // The scope on a path no project owns is dropped; the other carries GitLab's meta.
    assert_eq!(
        claims["access"],
        json!([{
            "type": "repository", "name": "g/app/api", "actions": ["pull", "push"],
            "meta": {"project_path": "g/app", "project_id": pid, "root_namespace_id": gid}
        }])
    );

    // Anonymous and deploy-token tokens have no `sub`.
    stack
        .ok(
            Method::PUT,
            &format!("/projects/{pid}"),
            &stack.root_token,
            Some(json!({"visibility": "public"})),
            StatusCode::OK,
        )
        .await;
    let anon = stack.registry_token(None, &["repository:g/app:pull"]).await;
    let claims = verify_independently(&stack, &anon).await;
    assert_eq!(claims["auth_type"], "none");
    assert!(claims.get("sub").is_none());
    assert_eq!(claims["access"][0]["actions"], json!(["pull"]));
    let deploy = stack
        .ok(
            Method::POST,
            &format!("/projects/{pid}/deploy_tokens"),
            &stack.root_token,
            Some(json!({"name": "ci", "scopes": ["read_registry"]})),
            StatusCode::CREATED,
        )
        .await;
    let dt = stack
        .registry_token(
            Some((
                deploy["username"].as_str().unwrap(),
                deploy["token"].as_str().unwrap(),
            )),
            &["repository:g/app:pull,push"],
        )
        .await;
    let claims = verify_independently(&stack, &dt).await;
    assert_eq!(claims["auth_type"], "deploy_token");
    assert!(claims.get("sub").is_none());
    assert_eq!(claims["access"][0]["actions"], json!(["pull"]));

    // The registry accepts what auth issued.
    let r = stack
        .http
        .get(format!("{}/v2/g/app/api/tags/list", stack.registry.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "authorized; no such repository yet"
    );
});

stack_test!(docker_login_answers_like_gitlab, |stack| {
    let (_pid, _gid, pat) = fixture(&stack).await;
    // docker login: no scope.
    let r = stack.jwt(Some(("dev", &pat)), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    for field in ["token", "access_token", "expires_in", "issued_at"] {
        assert!(v.get(field).is_some(), "{field} in {v}");
    }
    assert_eq!(v["expires_in"], 300);
    // Passwords work too (for people).
    assert_eq!(
        stack
            .jwt(Some(("dev", "dev-password-123")), &[])
            .await
            .status(),
        StatusCode::OK
    );
    // Bad credentials: 401 with the registry's JSON.
    for (user, secret) in [("dev", "wrong"), ("nobody", "x"), ("dev", "bpat-forged")] {
        let r = stack.jwt(Some((user, secret)), &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED", "{v}");
    }
    // A credential without any registry scope: 403 DENIED.
    let dev_id = stack
        .ok(
            Method::GET,
            "/users?username=dev",
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await[0]["id"]
        .as_i64()
        .unwrap();
    let read_user = stack.pat(dev_id, &["read_user"]).await;
    let r = stack
        .jwt(Some(("dev", &read_user)), &["repository:g/app:pull"])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED", "{v}");
    // Anonymous asking for a private repository: 403 as well (nothing granted).
    let r = stack.jwt(None, &["repository:g/app:pull"]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Unknown service: 404.
    let r = stack
        .http
        .get(format!("{}/jwt/auth?service=other", stack.auth.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
});

stack_test!(failed_logins_are_rate_limited, |stack| {
    let (_pid, _gid, pat) = fixture(&stack).await;
    stack.create_user("alice", "alice-password-1").await;
    stack.create_user("bob", "bob-password-12").await;
    for i in 1..=10 {
        let r = stack.jwt(Some(("alice", "guess")), &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The 11th, even with the right password, is refused with 429 and Retry-After.
    let r = stack.jwt(Some(("alice", "alice-password-1")), &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
    // Other users behind the same address still log in.
    assert_eq!(
        stack
            .jwt(Some(("bob", "bob-password-12")), &[])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        stack.jwt(Some(("dev", &pat)), &[]).await.status(),
        StatusCode::OK
    );
    // Spraying: failures across many usernames hit the per-address cap (50 by default;
    // 10 so far) and then password logins from that address stop, while tokens still work.
    for i in 0..40 {
        let r = stack
            .jwt(Some((&format!("spray{i}"), "Summer2026!")), &[])
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "spray {i}");
    }
    let r = stack.jwt(Some(("bob", "bob-password-12")), &[]).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "password spraying is stopped"
    );
    assert_eq!(
        stack.jwt(Some(("dev", &pat)), &[]).await.status(),
        StatusCode::OK
    );
    // Job tokens are exempt (GitLab): a bad one is a plain 401, never 429.
    for _ in 0..12 {
        let r = stack.jwt(Some(("gitlab-ci-token", "bjob-nope")), &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
});

/// Rotation with tokens from the real endpoint: after `berth-auth keys rotate` the new key
/// is published at once, signs after the publish delay, and tokens of the old key keep
/// working at the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_tokens_working() {
    let opts = Options {
        auth_env: vec![("BERTH_KEY_PUBLISH_DELAY".into(), "11s".into())],
        ..Default::default()
    };
    for backend in [
        berth_test_support::Backend::Sqlite,
        berth_test_support::Backend::Postgres,
    ] {
        let Some(stack) = Stack::start_with(backend, opts.clone()).await else {
            continue;
        };
        let (_pid, _gid, pat) = fixture(&stack).await;
        let scope = ["repository:g/app:pull,push"];
        let old = stack.registry_token(Some(("dev", &pat)), &scope).await;
        let old_kid = part(&old, 0)["kid"].as_str().unwrap().to_owned();
        let status = crate::support::binary("berth-auth");
        let panics = berth_test_support::PanicGuard::new("berth-auth keys rotate");
        let out = std::process::Command::new(status)
            .env_clear()
            .env(berth_test_support::panics::PANIC_FILE_ENV, panics.path())
            .env("BERTH_DATABASE_URL", &stack.db.url)
            .env("RUST_LOG", "warn")
            .args(["--no-migrate", "keys", "rotate"])
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success());
        let new_kid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let kids: Vec<Value> = jwks(&stack)
            .await
            .iter()
            .map(|k| k["kid"].clone())
            .collect();
        assert!(kids.contains(&json!(new_kid)) && kids.contains(&json!(old_kid)));
        // Within the publish delay (and the signer's refresh), new tokens switch keys.
        let deadline = Instant::now() + Duration::from_secs(45);
        let new = loop {
            let t = stack.registry_token(Some(("dev", &pat)), &scope).await;
            if part(&t, 0)["kid"] == new_kid.as_str() {
                break t;
            }
            assert!(Instant::now() < deadline, "new key never signed");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        verify_independently(&stack, &new).await;
        for t in [&old, &new] {
            let r = stack
                .http
                .get(format!("{}/v2/g/app/tags/list", stack.registry.url))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::NOT_FOUND,
                "accepted (empty repository)"
            );
        }
    }
}
