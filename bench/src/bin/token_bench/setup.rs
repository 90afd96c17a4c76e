//! The bench's data, made the way a user would: root's token from the `berth-auth` CLI,
//! then a group, two projects, a developer and their PAT through the REST API.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

use crate::DEV_PASSWORD;
use crate::server::{Auth, auth_command};

/// What the variants need.
pub struct Setup {
    /// The developer's personal access token.
    pub pat: String,
}

/// root's token from the CLI; then, through the API: group `bench`, private project
/// `bench/app`, public project `bench/pub`, user `dev` (developer of `bench/app`) and dev's
/// PAT.
pub async fn setup(auth: &Auth, bin: &Path, database_url: &str) -> anyhow::Result<Setup> {
    let out = auth_command(bin, database_url)
        .args([
            "--no-migrate",
            "token",
            "create",
            "--user",
            "root",
            "--scopes",
            "api,read_registry,write_registry",
            "--name",
            "bench",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running berth-auth token create")?;
    anyhow::ensure!(
        out.status.success(),
        "berth-auth token create failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let root = String::from_utf8(out.stdout)?.trim().to_owned();
    anyhow::ensure!(!root.is_empty(), "berth-auth token create printed nothing");

    let api = Api {
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: format!("{}/api/v4", auth.base),
        token: root,
    };
    let group = api
        .post(
            "/groups",
            json!({"name": "bench", "path": "bench", "visibility": "private"}),
        )
        .await?;
    let gid = id_of(&group)?;
    let project = api
        .post(
            "/projects",
            json!({"name": "app", "path": "app", "namespace_id": gid, "visibility": "private"}),
        )
        .await?;
    let pid = id_of(&project)?;
    let public = json!({"name": "pub", "path": "pub", "namespace_id": gid, "visibility": "public"});
    if let Err(e) = api.post("/projects", public.clone()).await {
        // GitLab refuses a project more visible than its group; then open the group.
        eprintln!("note: {e:#}; making group bench public");
        api.put(&format!("/groups/{gid}"), json!({"visibility": "public"}))
            .await?;
        api.post("/projects", public).await?;
    }
    let user = api
        .post(
            "/users",
            json!({"username": "dev", "email": "dev@example.com", "name": "dev",
                   "password": DEV_PASSWORD}),
        )
        .await?;
    let uid = id_of(&user)?;
    api.post(
        &format!("/projects/{pid}/members"),
        json!({"user_id": uid, "access_level": 30}),
    )
    .await?;
    let pat = api
        .post(
            &format!("/users/{uid}/personal_access_tokens"),
            json!({"name": "bench", "scopes": ["read_registry", "write_registry"]}),
        )
        .await?;
    let pat = pat
        .get("token")
        .and_then(Value::as_str)
        .with_context(|| format!("no token in {pat}"))?
        .to_owned();
    Ok(Setup { pat })
}

/// The management API as root.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.client.post(format!("{}{path}", self.base)), path, body)
            .await
    }

    async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.client.put(format!("{}{path}", self.base)), path, body)
            .await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let resp = req
            .header("PRIVATE-TOKEN", &self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| path.to_owned())?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "{path} {body} answered {status}: {text}"
        );
        serde_json::from_str(&text).with_context(|| format!("{path} answered {text}"))
    }
}

fn id_of(v: &Value) -> anyhow::Result<i64> {
    v.get("id")
        .and_then(Value::as_i64)
        .with_context(|| format!("no id in {v}"))
}

/// `Basic base64(user:password)`, built by reqwest so the bench needs no base64 crate.
pub fn basic_header(user: &str, password: &str) -> anyhow::Result<HeaderValue> {
    let req = reqwest::Client::new()
        .get("http://127.0.0.1/")
        .basic_auth(user, Some(password))
        .build()?;
    req.headers()
        .get(AUTHORIZATION)
        .cloned()
        .context("reqwest set no Authorization header")
}
