//! A test signing key written to a PEM file the registry trusts, and a stand-in token server
//! that grants whatever scope is asked (the real decision table arrives with berth-auth).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use berth_token::{Access, Issuer, SigningKey};

/// Issuer name the test keys sign with.
pub const ISSUER: &str = "berth-test";
/// The registry's service name.
pub const SERVICE: &str = "container_registry";

/// A signing key, its public key in a PEM file, and an issuer.
pub struct TestKeys {
    /// Signs test tokens.
    pub issuer: Arc<Issuer>,
    /// PEM file with the public key, for the registry's `token_public_key_file`.
    pub public_key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestKeys {
    /// A fresh key pair.
    pub fn new() -> TestKeys {
        let key = SigningKey::generate();
        let dir = tempfile::tempdir().expect("tempdir");
        let public_key_file = dir.path().join("token.pub.pem");
        std::fs::write(&public_key_file, key.public_key().to_pem()).expect("write pem");
        let issuer = Issuer::new(key, ISSUER, SERVICE, Duration::from_secs(300));
        TestKeys {
            issuer: Arc::new(issuer),
            public_key_file,
            _dir: dir,
        }
    }

    /// A token granting `actions` on repository `name`.
    pub fn token(&self, name: &str, actions: &[&str]) -> String {
        self.token_for(vec![Access::repository(name, actions)])
    }

    /// A token with exactly these access entries.
    pub fn token_for(&self, access: Vec<Access>) -> String {
        self.issuer
            .issue(
                Some("tester".into()),
                Some("personal_access_token".into()),
                access,
            )
            .expect("sign")
            .0
    }
}

impl Default for TestKeys {
    fn default() -> Self {
        TestKeys::new()
    }
}

/// A running stand-in for `/jwt/auth`: every requested scope is granted.
pub struct TokenServer {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// Fails the test, when the server is dropped, if a request to it panicked.
    _panics: crate::panics::PanicLogGuard,
}

impl TokenServer {
    /// Serve on an ephemeral port until the test ends.
    pub async fn start(issuer: Arc<Issuer>) -> TokenServer {
        let panics = crate::panics::PanicLog::new("the test token server");
        let app = axum::Router::new()
            .route("/jwt/auth", get(issue))
            .with_state(issuer);
        let app = crate::panics::catch_recorded(app, &panics);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenServer {
            url: format!("http://{addr}"),
            _panics: crate::panics::PanicLogGuard(panics),
        }
    }

    /// The realm to configure in the registry.
    pub fn realm(&self) -> String {
        format!("{}/jwt/auth", self.url)
    }
}

async fn issue(
    State(issuer): State<Arc<Issuer>>,
    RawQuery(q): RawQuery,
) -> Json<serde_json::Value> {
    let values: Vec<String> = q
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope=").map(percent_decode))
        .collect();
    let access = berth_core::scope::parse_requested(values.iter().map(String::as_str))
        .unwrap_or_default()
        .into_iter()
        .map(|scope| {
            let actions: Vec<&str> = scope.actions.iter().map(|a| a.as_str()).collect();
            let mut a = Access::repository(scope.name, &actions);
            a.kind = scope.resource_type.to_owned();
            a
        })
        .collect();
    let (token, claims) = issuer
        .issue(
            Some("tester".into()),
            Some("personal_access_token".into()),
            access,
        )
        .expect("sign");
    Json(serde_json::json!({
        "token": token, "access_token": token,
        "expires_in": claims.exp - claims.iat, "issued_at": chrono_like(claims.iat),
    }))
}

/// RFC 3339, as clients (containers/image) parse `issued_at`.
fn chrono_like(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
