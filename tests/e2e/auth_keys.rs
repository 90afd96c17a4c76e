//! berth-auth's signing keys and JWKS, against a registry that fetches the JWKS: a token
//! signed with the stored key is accepted, the JWKS `kid` is the key's libtrust fingerprint,
//! and `berth-auth keys rotate` publishes the new key at once while the old one keeps
//! signing (publish before sign), so tokens of both verify.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_db::entity::signing_keys;
use berth_token::{Access, Issuer, SigningKey};
use reqwest::StatusCode;
use sea_orm::{EntityTrait, QueryOrder};

use crate::both;
use crate::support::*;

struct Auth {
    url: String,
    child: std::process::Child,
    /// Dropped after `child` was killed: fails the test if berth-auth recorded a panic.
    _panics: berth_test_support::PanicGuard,
}

impl Drop for Auth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn auth_command(db_url: &str) -> Command {
    let mut cmd = Command::new(binary("berth-auth"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("BERTH_DATABASE_URL", db_url)
        .env("BERTH_TOKEN_ISSUER", berth_test_support::tokens::ISSUER)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

async fn start_auth(db_url: &str) -> Auth {
    let port = free_port();
    let panics = berth_test_support::PanicGuard::new("berth-auth");
    let child = panics
        .arm(&mut auth_command(db_url))
        .env("BERTH_AUTH_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn berth-auth");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{url}/-/health"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "berth-auth did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Auth {
        url,
        child,
        _panics: panics,
    }
}

/// The newest stored signing key, as berth-auth would sign with it.
async fn newest_key(db_url: &str) -> SigningKey {
    let db = berth_db::connect(db_url).await.unwrap();
    let row = signing_keys::Entity::find()
        .order_by_desc(signing_keys::Column::Id)
        .one(&db.read)
        .await
        .unwrap()
        .expect("a signing key");
    SigningKey::from_pkcs8_pem(&row.private_pem).unwrap()
}

async fn jwks_kids(http: &reqwest::Client, auth: &Auth) -> Vec<String> {
    let doc: serde_json::Value = http
        .get(format!("{}/.well-known/jwks.json", auth.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // parse_jwks rejects any key whose kid is not the fingerprint of its own material.
    let (keys, rejected) = berth_token::parse_jwks(&doc).unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    for k in &keys {
        assert_eq!(k.kid(), berth_token::libtrust_kid(k.spki_der()));
    }
    keys.iter().map(|k| k.kid().to_owned()).collect()
}

both!(registry_trusts_the_auth_jwks_across_rotation, |env| {
    let auth = start_auth(&env.db.url).await;
    let registry = env
        .spawn_registry(&[
            ("BERTH_TOKEN_PUBLIC_KEY_FILE", ""),
            ("BERTH_AUTH_URL", auth.url.as_str()),
        ])
        .await;
    let name = "acme/platform/api";
    let sign = |key: SigningKey| {
        let issuer = Issuer::new(
            key,
            berth_test_support::tokens::ISSUER,
            "container_registry",
            Duration::from_secs(300),
        );
        issuer
            .issue(
                Some("u".into()),
                None,
                vec![Access::repository(name, &["pull", "push"])],
            )
            .unwrap()
            .0
    };
    let status = |token: String| {
        let (http, url) = (env.http.clone(), registry.url.clone());
        async move {
            http.post(format!("{url}/v2/{name}/blobs/uploads/"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let first = newest_key(&env.db.url).await;
    assert_eq!(
        jwks_kids(&env.http, &auth).await,
        vec![first.kid().to_owned()]
    );
    let old_token = sign(first.clone());
    assert_eq!(status(old_token.clone()).await, StatusCode::ACCEPTED);

    let rotate_panics = berth_test_support::PanicGuard::new("berth-auth keys rotate");
    let out = rotate_panics
        .arm(&mut auth_command(&env.db.url))
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = newest_key(&env.db.url).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), second.kid());
    assert_ne!(first.kid(), second.kid());
    // Published at once, newest first; the old key still signs until the new one is ripe.
    let kids = jwks_kids(&env.http, &auth).await;
    assert_eq!(kids, vec![second.kid().to_owned(), first.kid().to_owned()]);
    let db = berth_db::connect(&env.db.url).await.unwrap();
    assert_eq!(
        berth_auth::keys::active(&db, berth_auth::keys::PUBLISH_DELAY)
            .await
            .unwrap()
            .kid(),
        first.kid()
    );
    assert_eq!(
        status(old_token).await,
        StatusCode::ACCEPTED,
        "the old key's tokens keep working"
    );
    // A registry that fetches the JWKS now trusts the new key too.
    let fresh = env
        .spawn_registry(&[
            ("BERTH_TOKEN_PUBLIC_KEY_FILE", ""),
            ("BERTH_AUTH_URL", auth.url.as_str()),
        ])
        .await;
    let r = env
        .http
        .post(format!("{}/v2/{name}/blobs/uploads/", fresh.url))
        .bearer_auth(sign(second))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
});
