//! Immutable tag rules end to end: a Maintainer creates rules through the API, `/jwt/auth`
//! carries them in `meta.tag_immutable_patterns`, and the registry refuses to overwrite or
//! delete an existing matching tag — for everyone, admins included — while creating one,
//! re-pushing the same manifest and changing other tags still work.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stack::{ROOT_PASSWORD, Stack};
use crate::stack_test;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn claims(token: &str) -> Value {
    let seg = token.split('.').nth(1).expect("jwt payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url")).expect("json")
}

/// Push a config and a layer seeded with `seed`; returns the manifest over them.
async fn image(stack: &Stack, base: &str, jwt: &str, seed: &str) -> Vec<u8> {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let layer = format!("layer-{seed}").into_bytes();
    for blob in [&config, &layer] {
        let digest = Digest::sha256(blob);
        let r = stack
            .http
            .post(format!("{base}/blobs/uploads/?digest={digest}"))
            .bearer_auth(jwt)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    crate::support::image_manifest(
        (&Digest::sha256(&config), config.len()),
        &[(&Digest::sha256(&layer), layer.len())],
        json!({}),
    )
}

async fn put(stack: &Stack, base: &str, jwt: &str, tag: &str, manifest: &[u8]) -> (u16, Value) {
    let r = stack
        .http
        .put(format!("{base}/manifests/{tag}"))
        .bearer_auth(jwt)
        .header("content-type", MANIFEST_TYPE)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(stack: &Stack, base: &str, jwt: &str, reference: &str) -> (u16, Value) {
    let r = stack
        .http
        .delete(format!("{base}/manifests/{reference}"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The digest `tag` resolves to.
async fn resolve(stack: &Stack, base: &str, jwt: &str, tag: &str) -> String {
    let r = stack
        .http
        .head(format!("{base}/manifests/{tag}"))
        .bearer_auth(jwt)
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "HEAD {tag}");
    r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn assert_immutable(answer: (u16, Value), tag: &str) {
    let (status, body) = answer;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errors"][0]["code"], "TAG_IMMUTABLE", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(tag) && message.contains("^v[0-9]+"),
        "{message}"
    );
}

stack_test!(immutable_tags, |stack| {
    let group = stack.create_group("imm", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let maintainer = stack.create_user("keeper", "keeper-password-123").await;
    stack.add_member("projects", pid, maintainer, 40).await;
    let keeper = stack
        .pat(maintainer, &["api", "read_registry", "write_registry"])
        .await;
    let developer = stack.create_user("dev", "dev-password-123").await;
    stack.add_member("projects", pid, developer, 30).await;
    let dev = stack
        .pat(developer, &["api", "read_registry", "write_registry"])
        .await;
    let rules = format!("/projects/{pid}/registry/protection/tag/rules");

    // The API: Maintainer+, RE2 patterns of at most 100 characters, five per project.
    let (status, _) = stack
        .call(
            Method::POST,
            &rules,
            &dev,
            Some(json!({"tag_name_pattern": "^v[0-9]+"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = stack.call(Method::GET, &rules, &dev, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in ["v[0-9", "(a)\\1", ""] {
        let (status, body) = stack
            .call(
                Method::POST,
                &rules,
                &keeper,
                Some(json!({"tag_name_pattern": bad})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = stack
        .call(
            Method::POST,
            &rules,
            &keeper,
            Some(json!({"tag_name_pattern": "a".repeat(101)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let rule = stack
        .ok(
            Method::POST,
            &rules,
            &keeper,
            Some(json!({"tag_name_pattern": "^v[0-9]+"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(rule["project_id"], pid);
    assert_eq!(rule["tag_name_pattern"], "^v[0-9]+");
    assert_eq!(rule["minimum_access_level_for_push"], Value::Null);
    let mut extra = Vec::new();
    for i in 0..4 {
        let r = stack
            .ok(
                Method::POST,
                &rules,
                &keeper,
                Some(json!({"tag_name_pattern": format!("^release-{i}$")})),
                StatusCode::CREATED,
            )
            .await;
        extra.push(r["id"].as_i64().unwrap());
    }
    let (status, body) = stack
        .call(
            Method::POST,
            &rules,
            &keeper,
            Some(json!({"tag_name_pattern": "^rc-"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("Maximum number"));
    for id in &extra {
        let (status, _) = stack
            .call(Method::DELETE, &format!("{rules}/{id}"), &dev, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = stack
            .call(Method::DELETE, &format!("{rules}/{id}"), &keeper, None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let listed = stack
        .ok(Method::GET, &rules, &keeper, None, StatusCode::OK)
        .await;
    assert_eq!(listed, json!([rule]));

    // The JWT carries the rules, for Maintainers and admins alike.
    let name = "imm/app";
    let scope = format!("repository:{name}:pull,push,delete");
    let jwt = stack
        .registry_token(Some(("keeper", &keeper)), &[&scope])
        .await;
    let root = stack
        .registry_token(Some(("root", ROOT_PASSWORD)), &[&scope])
        .await;
    for token in [&jwt, &root] {
        assert_eq!(
            claims(token)["access"][0]["meta"]["tag_immutable_patterns"],
            json!(["^v[0-9]+"])
        );
    }

    // Creating a matching tag is fine; moving or deleting it is not, for anyone.
    let base = format!("{}/v2/{name}", stack.registry.url);
    let first = image(&stack, &base, &jwt, "one").await;
    let second = image(&stack, &base, &jwt, "two").await;
    let first_digest = Digest::sha256(&first).to_string();
    assert_eq!(put(&stack, &base, &jwt, "v1", &first).await.0, 201);
    assert_eq!(put(&stack, &base, &jwt, "v1", &first).await.0, 201);
    assert_immutable(put(&stack, &base, &jwt, "v1", &second).await, "v1");
    assert_immutable(put(&stack, &base, &root, "v1", &second).await, "v1");
    assert_eq!(resolve(&stack, &base, &jwt, "v1").await, first_digest);
    assert_immutable(delete(&stack, &base, &jwt, "v1").await, "v1");
    assert_immutable(delete(&stack, &base, &root, "v1").await, "v1");
    assert_immutable(delete(&stack, &base, &root, &first_digest).await, "v1");
    assert_eq!(resolve(&stack, &base, &jwt, "v1").await, first_digest);

    // Tags the rules do not match stay mutable.
    assert_eq!(put(&stack, &base, &jwt, "latest", &first).await.0, 201);
    assert_eq!(put(&stack, &base, &jwt, "latest", &second).await.0, 201);
    let second_digest = Digest::sha256(&second).to_string();
    assert_eq!(resolve(&stack, &base, &jwt, "latest").await, second_digest);
    assert_eq!(delete(&stack, &base, &jwt, "latest").await.0, 202);
    assert_eq!(delete(&stack, &base, &jwt, &second_digest).await.0, 202);

    // Without rules the token carries no patterns.
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("{rules}/{}", rule["id"]),
            &keeper,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let plain = stack
        .registry_token(Some(("keeper", &keeper)), &[&scope])
        .await;
    assert!(
        claims(&plain)["access"][0]["meta"]
            .get("tag_immutable_patterns")
            .is_none()
    );
    assert_eq!(delete(&stack, &base, &plain, "v1").await.0, 202);
});
