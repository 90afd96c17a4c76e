//! No secret ever reaches a log: both services run at TRACE, a user logs in with a password
//! and with a PAT, gets API and registry tokens and pushes an image; then every log line of
//! both services is searched for each secret (and the Basic header that carried it).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_core::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stack::{Options, ROOT_PASSWORD, Stack};

async fn run(stack: Stack) {
    let password = "s3cret-Password-for-logs";
    let group = stack.create_group("logs", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let user = stack.create_user("writer", password).await;
    stack
        .add_member("projects", project["id"].as_i64().unwrap(), user, 30)
        .await;
    let pat = stack.pat(user, &["read_registry", "write_registry"]).await;

    // An API token through GitLab's password grant, and a refresh.
    let r = stack
        .http
        .post(format!("{}/oauth/token", stack.auth.url))
        .form(&[
            ("grant_type", "password"),
            ("username", "writer"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let oauth: Value = r.json().await.unwrap();
    let api_token = oauth["access_token"].as_str().unwrap().to_owned();
    let api_refresh = oauth["refresh_token"].as_str().unwrap().to_owned();
    let me = stack
        .ok(Method::GET, "/user", &api_token, None, StatusCode::OK)
        .await;
    assert_eq!(me["username"], "writer");

    // Docker's OAuth2 form with a refresh token.
    let r = stack
        .http
        .post(format!("{}/jwt/auth", stack.auth.url))
        .form(&[
            ("grant_type", "password"),
            ("service", "container_registry"),
            ("username", "writer"),
            ("password", pat.as_str()),
            ("access_type", "offline"),
            ("scope", "repository:logs/app:pull,push"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let form: Value = r.json().await.unwrap();
    let registry_refresh = form["refresh_token"].as_str().unwrap().to_owned();
    let r = stack
        .http
        .post(format!("{}/jwt/auth", stack.auth.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("service", "container_registry"),
            ("refresh_token", registry_refresh.as_str()),
            ("scope", "repository:logs/app:pull,push"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed: Value = r.json().await.unwrap();
    assert_eq!(refreshed["scope"], "repository:logs/app:pull,push");

    // The push, as a Docker client does it: Basic at /jwt/auth, Bearer at the registry.
    let scope = ["repository:logs/app:pull,push"];
    let by_password = stack
        .registry_token(Some(("writer", password)), &scope)
        .await;
    let jwt = stack.registry_token(Some(("writer", &pat)), &scope).await;
    let base = format!("{}/v2/logs/app", stack.registry.url);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"layer bytes for the log test".to_vec();
    for blob in [&config, &layer] {
        let digest = Digest::sha256(blob);
        let r = stack
            .http
            .post(format!("{base}/blobs/uploads/?digest={digest}"))
            .bearer_auth(&jwt)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let manifest = crate::support::image_manifest(
        (&Digest::sha256(&config), config.len()),
        &[(&Digest::sha256(&layer), layer.len())],
        json!({}),
    );
    let r = stack
        .http
        .put(format!("{base}/manifests/v1"))
        .bearer_auth(&by_password)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = stack
        .http
        .get(format!("{base}/manifests/v1"))
        .bearer_auth(&jwt)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Give the services a moment to flush their last lines.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let logs = stack.log_text();
    // Both services really logged at TRACE (the filter was not left at its default).
    assert!(
        logs.contains(" TRACE ") && logs.contains("token issued"),
        "TRACE logs of both services captured"
    );
    let secrets = [
        ("user password", password.to_owned()),
        ("root password", ROOT_PASSWORD.to_owned()),
        ("PAT", pat.clone()),
        ("root PAT", stack.root_token.clone()),
        ("API token", api_token),
        ("API refresh token", api_refresh),
        ("registry refresh token", registry_refresh),
        ("registry JWT", jwt.clone()),
        ("password JWT", by_password.clone()),
        ("JWT signature", jwt.rsplit('.').next().unwrap().to_owned()),
        (
            "Basic header",
            STANDARD.encode(format!("writer:{password}")),
        ),
        (
            "Basic header (PAT)",
            STANDARD.encode(format!("writer:{pat}")),
        ),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(&secret), "the {what} appears in a log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_trace_logs() {
    for backend in [
        berth_test_support::Backend::Sqlite,
        berth_test_support::Backend::Postgres,
    ] {
        let opts = Options {
            log: Some("trace".into()),
            ..Default::default()
        };
        if let Some(stack) = Stack::start_with(backend, opts).await {
            run(stack).await;
        }
    }
}
