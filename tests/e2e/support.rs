//! Starting real `berth-registry` processes against a test database and store, minting
//! tokens, and small OCI client helpers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_test_support::{Backend, PanicGuard, TestDb, TestKeys, TokenServer};
use reqwest::StatusCode;
use serde_json::json;

/// Project paths the tests' registries know.
pub const PROJECTS: &str = "acme/platform,acme/other";

/// The `berth-registry` binary next to this test binary (built by the workspace build).
pub fn registry_binary() -> PathBuf {
    binary("berth-registry")
}

/// A workspace binary next to this test binary (built by the workspace build).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} not built; run the workspace build first",
        bin.display()
    );
    bin
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running registry process; killed on drop, and then the test fails if it panicked.
pub struct RegistryProcess {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    child: Child,
    /// Dropped after `child` was killed: fails the test if the process recorded a panic.
    _panics: PanicGuard,
}

impl RegistryProcess {
    /// Send SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A registry environment: database, store, keys and token server; processes come and go.
pub struct Env {
    /// The database.
    pub db: TestDb,
    /// Blob store directory.
    pub store: tempfile::TempDir,
    /// Token signing keys.
    pub keys: TestKeys,
    /// Stand-in for berth-auth.
    pub token_server: TokenServer,
    /// The first registry process.
    pub registry: RegistryProcess,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl Env {
    /// Start everything on `backend`; `None` when the backend is unavailable (skipped).
    pub async fn start(backend: Backend) -> Option<Env> {
        let db = TestDb::new(backend).await?;
        let store = tempfile::tempdir().expect("tempdir");
        let keys = TestKeys::new();
        let token_server = TokenServer::start(keys.issuer.clone()).await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let registry = spawn(&db, store.path(), &keys, &token_server, &[]).await;
        Some(Env {
            db,
            store,
            keys,
            token_server,
            registry,
            http,
        })
    }

    /// Another registry process sharing this database and store.
    pub async fn spawn_registry(&self, extra_env: &[(&str, &str)]) -> RegistryProcess {
        spawn(
            &self.db,
            self.store.path(),
            &self.keys,
            &self.token_server,
            extra_env,
        )
        .await
    }

    /// Kill the registry with SIGKILL and start a new process on the same data.
    pub async fn restart(&mut self) {
        self.registry.kill();
        self.registry = self.spawn_registry(&[]).await;
    }

    /// `http://host:port` of the current registry.
    pub fn url(&self) -> &str {
        &self.registry.url
    }

    /// `host:port` of the current registry.
    pub fn host(&self) -> String {
        self.registry.url.trim_start_matches("http://").to_owned()
    }

    /// A request to the current registry: `path` is appended to its base URL.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: impl AsRef<str>,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(token.as_ref())
    }

    /// `GET` with a bearer token.
    pub fn get(&self, path: &str, token: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path, token)
    }

    /// `HEAD` with a bearer token.
    pub fn head(&self, path: &str, token: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::HEAD, path, token)
    }

    /// `POST` with a bearer token.
    pub fn post(&self, path: &str, token: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path, token)
    }

    /// `PUT` with a bearer token.
    pub fn put(&self, path: &str, token: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, path, token)
    }

    /// `PATCH` with a bearer token.
    pub fn patch(&self, path: &str, token: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PATCH, path, token)
    }

    /// `DELETE` with a bearer token.
    pub fn delete(&self, path: &str, token: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, path, token)
    }

    /// A bearer token for `actions` on `name`.
    pub fn token(&self, name: &str, actions: &[&str]) -> String {
        self.keys.token(name, actions)
    }
}

async fn spawn(
    db: &TestDb,
    store: &Path,
    keys: &TestKeys,
    ts: &TokenServer,
    extra: &[(&str, &str)],
) -> RegistryProcess {
    let port = free_port();
    let mut cmd = Command::new(registry_binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "RUST_LOG",
            std::env::var("BERTH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("BERTH_DATABASE_URL", &db.url)
        .env("BERTH_STORAGE_URL", format!("file://{}", store.display()))
        .env("BERTH_REGISTRY_ADDR", format!("127.0.0.1:{port}"))
        .env("BERTH_TOKEN_PUBLIC_KEY_FILE", &keys.public_key_file)
        .env("BERTH_TOKEN_ISSUER", berth_test_support::tokens::ISSUER)
        .env("BERTH_TOKEN_REALM", ts.realm())
        .env("BERTH_REGISTRY_PROJECTS", PROJECTS)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let panics = PanicGuard::new("berth-registry");
    panics.arm(&mut cmd);
    let child = cmd.spawn().expect("spawn berth-registry");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/-/health")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "berth-registry did not start on {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    RegistryProcess {
        url,
        child,
        _panics: panics,
    }
}

/// Push `data` as a blob of `name` in one request; returns its digest.
pub async fn push_blob(env: &Env, name: &str, data: &[u8]) -> Digest {
    let digest = Digest::sha256(data);
    let token = env.token(name, &["pull", "push"]);
    let r = env
        .http
        .post(format!(
            "{}/v2/{name}/blobs/uploads/?digest={digest}",
            env.url()
        ))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .expect("push blob");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    digest
}

/// An OCI image manifest over `config` and `layers` (already pushed), with extra fields.
pub fn image_manifest(
    config: (&Digest, usize),
    layers: &[(&Digest, usize)],
    extra: serde_json::Value,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0.to_string(), "size": config.1},
        "layers": layers.iter().map(|(d, s)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": s
        })).collect::<Vec<_>>(),
    });
    if let (Some(obj), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        obj.extend(e.clone());
    }
    serde_json::to_vec(&m).expect("json")
}

/// PUT a manifest; returns the response.
pub async fn put_manifest(
    env: &Env,
    name: &str,
    reference: &str,
    body: &[u8],
) -> reqwest::Response {
    env.http
        .put(format!("{}/v2/{name}/manifests/{reference}", env.url()))
        .bearer_auth(env.token(name, &["pull", "push"]))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_vec())
        .send()
        .await
        .expect("put manifest")
}

/// Push a small image (config + one layer) tagged `tag`; returns the manifest digest.
pub async fn push_image(env: &Env, name: &str, tag: &str, seed: &str) -> Digest {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let layer = format!("layer-{seed}");
    let c = push_blob(env, name, config.as_bytes()).await;
    let l = push_blob(env, name, layer.as_bytes()).await;
    let m = image_manifest((&c, config.len()), &[(&l, layer.len())], json!({}));
    let r = put_manifest(env, name, tag, &m).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    Digest::sha256(&m)
}

/// The `errors[0].code` of an error response.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.expect("error json");
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Run `$body` as two tests, on SQLite and PostgreSQL, with `env: Env`.
#[macro_export]
macro_rules! both {
    ($name:ident, |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run(#[allow(unused_mut)] mut $env: $crate::support::Env) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(env) = $crate::support::Env::start(berth_test_support::Backend::Sqlite).await {
                    run(env).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = $crate::support::Env::start(berth_test_support::Backend::Postgres).await {
                    run(env).await;
                }
            }
        }
    };
}
