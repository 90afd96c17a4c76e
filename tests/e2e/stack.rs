//! The whole system for end-to-end tests: a real `berth-auth` and a real `berth-registry`
//! on one test database and store, the registry trusting auth's JWKS and sending clients to
//! its `/jwt/auth`, and helpers for the management API and the token endpoint.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_test_support::{Backend, PanicGuard, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{binary, free_port};

/// The bootstrap admin's password in tests.
pub const ROOT_PASSWORD: &str = "root-password-for-tests";

/// A running service process; killed on drop, and then the test fails if it panicked.
pub struct Proc {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    child: Child,
    /// Dropped after `child` was killed: fails the test if the process recorded a panic.
    _panics: PanicGuard,
}

impl Proc {
    /// Spawn `cmd` (the service `what`, serving at `url`) with its own panic file.
    fn spawn(mut cmd: Command, what: &str, url: String) -> Proc {
        let panics = PanicGuard::new(what);
        panics.arm(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            url,
            child,
            _panics: panics,
        }
    }

    /// The process id (to read its memory use from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM it (graceful shutdown) and wait for it to exit.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGSTOP it: frozen at once wherever it is (a transaction may stay open).
    pub fn pause(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status();
    }

    /// SIGKILL it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to start a stack.
#[derive(Default, Clone)]
pub struct Options {
    /// `RUST_LOG` for both services (default `warn`, or `BERTH_TEST_LOG`).
    pub log: Option<String>,
    /// Extra environment for berth-auth.
    pub auth_env: Vec<(String, String)>,
    /// Extra environment for berth-registry.
    pub registry_env: Vec<(String, String)>,
}

/// Auth + registry on one database and store.
pub struct Stack {
    /// The database.
    pub db: TestDb,
    /// The blob store directory (kept alive while the services run).
    _store: tempfile::TempDir,
    /// Where both services' output goes (`auth.log`/`.err`, `registry.log`/`.err`).
    pub logs: tempfile::TempDir,
    /// berth-auth.
    pub auth: Proc,
    /// berth-registry.
    pub registry: Proc,
    /// HTTP client.
    pub http: reqwest::Client,
    /// A root PAT with `api,read_registry,write_registry`.
    pub root_token: String,
    /// How berth-auth was started (for [`Stack::start_auth_again`]).
    auth_spawn: AuthSpawn,
}

/// What starting berth-auth takes.
#[derive(Clone)]
struct AuthSpawn {
    log: String,
    db_url: String,
    port: u16,
    registry_url: String,
    env: Vec<(String, String)>,
}

impl AuthSpawn {
    /// Spawn berth-auth; its output goes to `auth.log`/`auth.err` (appended when `append`).
    fn spawn(&self, logs: &tempfile::TempDir, append: bool) -> Proc {
        let auth_url = format!("http://127.0.0.1:{}", self.port);
        let mut cmd = base_command("berth-auth", &self.log, &self.db_url);
        cmd.env("BERTH_AUTH_ADDR", format!("127.0.0.1:{}", self.port))
            .env("BERTH_AUTH_URL", &auth_url)
            .env("BERTH_REGISTRY_URL", &self.registry_url)
            .env("BERTH_ROOT_PASSWORD", ROOT_PASSWORD)
            .stdout(log_file_mode(logs, "auth.log", append))
            .stderr(log_file_mode(logs, "auth.err", append));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Proc::spawn(cmd, "berth-auth", auth_url)
    }
}

async fn wait_healthy(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/-/health")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not start on {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn base_command(name: &str, log: &str, db_url: &str) -> Command {
    let mut cmd = Command::new(binary(name));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", log)
        .env("BERTH_DATABASE_URL", db_url)
        .stdout(Stdio::null());
    cmd
}

impl Stack {
    /// Start with default options; `None` when the backend is unavailable (skipped).
    pub async fn start(backend: Backend) -> Option<Stack> {
        Self::start_with(backend, Options::default()).await
    }

    /// Start with `opts`.
    pub async fn start_with(backend: Backend, opts: Options) -> Option<Stack> {
        let db = TestDb::new(backend).await?;
        let store = tempfile::tempdir().expect("tempdir");
        let logs = tempfile::tempdir().expect("tempdir");
        let log = opts
            .log
            .clone()
            .or_else(|| std::env::var("BERTH_TEST_LOG").ok())
            .unwrap_or_else(|| "warn".into());
        let auth_port = free_port();
        let registry_port = free_port();
        let auth_url = format!("http://127.0.0.1:{auth_port}");
        let registry_url = format!("http://127.0.0.1:{registry_port}");

        let auth_spawn = AuthSpawn {
            log: log.clone(),
            db_url: db.url.clone(),
            port: auth_port,
            registry_url: registry_url.clone(),
            env: opts.auth_env.clone(),
        };
        let auth = auth_spawn.spawn(&logs, false);
        wait_healthy(&auth.url, "berth-auth").await;

        let mut cmd = base_command("berth-registry", &log, &db.url);
        cmd.env("BERTH_REGISTRY_ADDR", format!("127.0.0.1:{registry_port}"))
            .env(
                "BERTH_STORAGE_URL",
                format!("file://{}", store.path().display()),
            )
            .env("BERTH_AUTH_URL", &auth_url)
            .stdout(log_file(&logs, "registry.log"))
            .stderr(log_file(&logs, "registry.err"));
        for (k, v) in &opts.registry_env {
            cmd.env(k, v);
        }
        let registry = Proc::spawn(cmd, "berth-registry", registry_url);
        wait_healthy(&registry.url, "berth-registry").await;

        let root_token = cli_token(&db.url, "root", "api,read_registry,write_registry");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        Some(Stack {
            db,
            _store: store,
            logs,
            auth,
            registry,
            http,
            root_token,
            auth_spawn,
        })
    }

    /// The root directory of the `file://` blob store both services (and berth-gc) use.
    pub fn store_path(&self) -> &std::path::Path {
        self._store.path()
    }

    /// Start a berth-gc process on this stack's database and store, with `env` on top
    /// (e.g. `BERTH_GC_REVIEW_DELAY`, `BERTH_GC_INTERVAL`); its output goes to
    /// `gc-<port>.log`/`.err`. Waits until it is healthy; `url` serves `/metrics`.
    pub async fn start_gc(&self, env: &[(&str, &str)]) -> Proc {
        let port = free_port();
        let mut cmd = base_command("berth-gc", &self.auth_spawn.log, &self.db.url);
        cmd.env("BERTH_GC_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "BERTH_STORAGE_URL",
                format!("file://{}", self._store.path().display()),
            )
            .stdout(log_file(&self.logs, &format!("gc-{port}.log")))
            .stderr(log_file(&self.logs, &format!("gc-{port}.err")));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let gc = Proc::spawn(cmd, "berth-gc", format!("http://127.0.0.1:{port}"));
        wait_healthy(&gc.url, "berth-gc").await;
        gc
    }

    /// `host:port` of the registry, as clients name it.
    pub fn registry_host(&self) -> String {
        self.registry.url.trim_start_matches("http://").to_owned()
    }

    /// Everything both services logged so far.
    pub fn log_text(&self) -> String {
        let mut files: Vec<String> = ["auth.log", "auth.err", "registry.log", "registry.err"]
            .iter()
            .map(|f| f.to_string())
            .collect();
        // berth-gc processes started by `start_gc`.
        let mut gc: Vec<String> = std::fs::read_dir(self.logs.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("gc-"))
            .collect();
        gc.sort();
        files.extend(gc);
        files
            .iter()
            .map(|f| std::fs::read_to_string(self.logs.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An API request (`path` under `/api/v4`) with `PRIVATE-TOKEN: token`.
    pub fn api(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v4{path}", self.auth.url))
            .header("private-token", token)
    }

    /// An API call with a JSON body; returns the status and the JSON answer (`Null` if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.api(method, path, token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("api request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An API call that must answer `expect`; returns the JSON.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        expect: StatusCode,
    ) -> Value {
        let (status, v) = self.call(method.clone(), path, token, body).await;
        assert_eq!(status, expect, "{method} {path}: {v}");
        v
    }

    /// `GET /jwt/auth` with optional Basic credentials and `scope` parameters.
    pub async fn jwt(&self, basic: Option<(&str, &str)>, scopes: &[&str]) -> reqwest::Response {
        let mut url = format!("{}/jwt/auth?service=container_registry", self.auth.url);
        for s in scopes {
            url.push_str("&scope=");
            url.push_str(&urlencode(s));
        }
        let mut req = self.http.get(url);
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        req.send().await.expect("jwt request")
    }

    /// A registry token for `scopes` (asserting 200).
    pub async fn registry_token(&self, basic: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let r = self.jwt(basic, scopes).await;
        assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
        let v: Value = r.json().await.expect("token json");
        v["token"].as_str().expect("token").to_owned()
    }

    /// Create a group (as root); returns its JSON.
    pub async fn create_group(&self, path: &str, parent_id: Option<i64>) -> Value {
        let mut body = json!({"name": path, "path": path, "visibility": "public"});
        if let Some(p) = parent_id {
            body["parent_id"] = json!(p);
        }
        self.ok(
            Method::POST,
            "/groups",
            &self.root_token,
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }

    /// Create a project in namespace `namespace_id` (as root); returns its JSON.
    pub async fn create_project(
        &self,
        namespace_id: i64,
        path: &str,
        visibility: &str,
        registry_access: &str,
    ) -> Value {
        let body = json!({
            "name": path, "path": path, "namespace_id": namespace_id,
            "visibility": visibility, "container_registry_access_level": registry_access,
        });
        self.ok(
            Method::POST,
            "/projects",
            &self.root_token,
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }

    /// Create a user with a password (as root); returns the user id.
    pub async fn create_user(&self, username: &str, password: &str) -> i64 {
        let body = json!({
            "username": username, "name": username,
            "email": format!("{username}@example.com"), "password": password,
        });
        let v = self
            .ok(
                Method::POST,
                "/users",
                &self.root_token,
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        v["id"].as_i64().expect("user id")
    }

    /// Add `user_id` to a project (`source` = `projects`) or group (`groups`) with `level`.
    pub async fn add_member(&self, source: &str, id: i64, user_id: i64, level: i32) {
        self.ok(
            Method::POST,
            &format!("/{source}/{id}/members"),
            &self.root_token,
            Some(json!({"user_id": user_id, "access_level": level})),
            StatusCode::CREATED,
        )
        .await;
    }

    /// A PAT for `user_id` with `scopes`, created by root.
    pub async fn pat(&self, user_id: i64, scopes: &[&str]) -> String {
        let v = self
            .ok(
                Method::POST,
                &format!("/users/{user_id}/personal_access_tokens"),
                &self.root_token,
                Some(json!({"name": "test", "scopes": scopes})),
                StatusCode::CREATED,
            )
            .await;
        v["token"].as_str().expect("token").to_owned()
    }
}

fn log_file(dir: &tempfile::TempDir, name: &str) -> Stdio {
    log_file_mode(dir, name, false)
}

fn log_file_mode(dir: &tempfile::TempDir, name: &str, append: bool) -> Stdio {
    let path: PathBuf = dir.path().join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .expect("log file");
    Stdio::from(file)
}

/// `berth-auth token create` against the database; the printed secret.
pub fn cli_token(db_url: &str, user: &str, scopes: &str) -> String {
    let panics = PanicGuard::new("berth-auth token create");
    let out = panics
        .arm(&mut base_command("berth-auth", "warn", db_url))
        .args([
            "--no-migrate",
            "token",
            "create",
            "--user",
            user,
            "--scopes",
            scopes,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("run berth-auth token create");
    assert!(out.status.success(), "token create failed");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Run `$body` as two tests, on SQLite and PostgreSQL, with `stack: Stack`.
#[macro_export]
macro_rules! stack_test {
    ($name:ident, |$stack:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run(#[allow(unused_mut)] mut $stack: $crate::stack::Stack) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(s) = $crate::stack::Stack::start(berth_test_support::Backend::Sqlite).await {
                    run(s).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(s) = $crate::stack::Stack::start(berth_test_support::Backend::Postgres).await {
                    run(s).await;
                }
            }
        }
    };
}
