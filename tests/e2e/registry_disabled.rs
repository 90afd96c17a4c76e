//! Switching a project's registry off (`container_registry_access_level: disabled`) stops
//! everything, admins included: within the registry's project-directory staleness bound
//! (`DIRECTORY_TTL`, 2 s) a token issued before the switch can neither pull, read tags nor
//! push (`403 REGISTRY_DISABLED`), `/jwt/auth` grants nothing, the management API answers
//! 403, and switching it back on restores the old token's access.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::images::{pull, push_blob, push_image, v2};
use crate::stack::Stack;
use crate::stack_test;

/// A little more than the registry's directory TTL.
const STALENESS: std::time::Duration = std::time::Duration::from_millis(2_300);

/// The `code` of a `/v2/` error answer.
async fn v2_code(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    (status, v["errors"][0]["code"].clone())
}

async fn set_level(stack: &Stack, pid: i64, level: &str) {
    stack
        .ok(
            Method::PUT,
            &format!("/projects/{pid}"),
            &stack.root_token,
            Some(json!({"container_registry_access_level": level})),
            StatusCode::OK,
        )
        .await;
}

stack_test!(registry_disabled_stops_old_tokens, |stack| {
    let group = stack.create_group("off", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let name = "off/app/img";
    let scope = format!("repository:{name}:pull,push");
    let jwt = stack
        .registry_token(Some(("root", &stack.root_token)), &[&scope])
        .await;
    let digest = push_image(&stack, name, &jwt, "one", &[b"layer"], &["v1"]).await;
    assert_eq!(pull(&stack, name, &jwt, "v1").await.0, StatusCode::OK);

    set_level(&stack, pid, "disabled").await;
    tokio::time::sleep(STALENESS).await;

    // Reads: manifests (cached or not), tags, blobs.
    for reference in ["v1", digest.as_str()] {
        let (status, body) = pull(&stack, name, &jwt, reference).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{reference}: {body}");
        assert_eq!(body["errors"][0]["code"], "REGISTRY_DISABLED");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("disabled") && message.contains("off/app"),
            "{message}"
        );
    }
    let base = v2(&stack, name);
    for url in [
        format!("{base}/tags/list"),
        format!("{base}/blobs/{}", berth_core::Digest::sha256(b"layer")),
    ] {
        let r = stack.http.get(&url).bearer_auth(&jwt).send().await.unwrap();
        assert_eq!(
            v2_code(r).await,
            (StatusCode::FORBIDDEN, json!("REGISTRY_DISABLED")),
            "{url}"
        );
    }
    // Writes: a blob upload and a manifest.
    let r = stack
        .http
        .post(format!("{base}/blobs/uploads/"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(
        v2_code(r).await,
        (StatusCode::FORBIDDEN, json!("REGISTRY_DISABLED"))
    );
    let r = stack
        .http
        .put(format!("{base}/manifests/v2"))
        .bearer_auth(&jwt)
        .header("content-type", crate::images::MANIFEST_TYPE)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        v2_code(r).await,
        (StatusCode::FORBIDDEN, json!("REGISTRY_DISABLED"))
    );
    // Without a token it is still the challenge: nothing learnt about the project.
    let r = stack
        .http
        .get(format!("{base}/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A new token grants nothing, even to the admin.
    let fresh = stack
        .registry_token(Some(("root", &stack.root_token)), &[&scope])
        .await;
    let claims = fresh.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let granted: Vec<&Value> = claims["access"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["actions"] != json!([])).collect())
        .unwrap_or_default();
    assert!(granted.is_empty(), "{claims}");

    // The management API: 403 for those who see the project.
    for path in [
        format!("/projects/{pid}/registry/repositories"),
        format!("/projects/{pid}/registry/repositories/1/tags"),
    ] {
        let (status, body) = stack
            .call(Method::GET, &path, &stack.root_token, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }

    // Switched back on, the old token works again.
    set_level(&stack, pid, "enabled").await;
    tokio::time::sleep(STALENESS).await;
    assert_eq!(pull(&stack, name, &jwt, "v1").await.0, StatusCode::OK);
    push_blob(&stack, name, &jwt, b"after").await;
});
