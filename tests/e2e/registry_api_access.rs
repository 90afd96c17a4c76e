//! The management API shows and changes registry content under the registry's own rules
//! (issue 12): for every registry access level and role, the cleanup-policy preview answers
//! as the tags listing does (a Reporter once read tags through the preview of a disabled
//! registry), and deleting a manifest by digest needs what the registry's `delete` action
//! needs, Maintainer and an `api` token, as `/jwt/auth` grants it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::matrix::{jwt_payload, push_tiny_image};
use crate::stack_test;

stack_test!(registry_api_follows_the_registry_rules, |stack| {
    let group = stack.create_group("ra", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let mut people = Vec::new();
    for (name, level) in [("guest", 10), ("rep", 20), ("dev", 30), ("keeper", 40)] {
        let id = stack
            .create_user(name, &format!("{name}-password-123"))
            .await;
        stack.add_member("projects", pid, id, level).await;
        people.push((name, level, stack.pat(id, &["api"]).await));
    }
    people.push(("root", 60, stack.root_token.clone()));
    let root_jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &["repository:ra/app:pull,push"],
        )
        .await;
    let (digest, _) = push_tiny_image(&stack, &root_jwt, "ra/app", "v1", "one").await;
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    let repo = format!(
        "/projects/{pid}/registry/repositories/{}",
        repos[0]["id"].as_i64().unwrap()
    );

    for level in ["enabled", "private", "disabled"] {
        stack
            .ok(
                Method::PUT,
                &format!("/projects/{pid}"),
                &stack.root_token,
                Some(json!({"container_registry_access_level": level})),
                StatusCode::OK,
            )
            .await;
        for (name, role, token) in &people {
            let tags = stack
                .call(Method::GET, &format!("{repo}/tags"), token, None)
                .await
                .0;
            let preview = stack
                .call(Method::GET, &format!("{repo}/cleanup_preview"), token, None)
                .await
                .0;
            // The preview is for Reporters and up, and never shows more than the tags do.
            let want = if *role >= 20 {
                tags
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(preview, want, "{level}, {name}: preview (tags: {tags})");
            if level == "disabled" {
                assert_eq!(tags, StatusCode::FORBIDDEN, "{level}, {name}: tags");
            }
        }
    }
    stack
        .ok(
            Method::PUT,
            &format!("/projects/{pid}"),
            &stack.root_token,
            Some(json!({"container_registry_access_level": "enabled"})),
            StatusCode::OK,
        )
        .await;

    // Deleting by digest: exactly those to whom `/jwt/auth` grants `delete`.
    for (name, role, token) in &people {
        if *name == "root" {
            continue;
        }
        let jwt = stack
            .registry_token(Some((name, token)), &["repository:ra/app:delete"])
            .await;
        let granted = jwt_payload(&jwt)["access"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        assert_eq!(granted, *role >= 40, "{name}: delete in the registry");
        let (status, body) = stack
            .call(
                Method::DELETE,
                &format!("{repo}/manifests/sha256:{}", "0".repeat(64)),
                token,
                None,
            )
            .await;
        let want = if granted {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, want, "{name}: delete by digest in the API: {body}");
    }
    let keeper = &people[3].2;
    stack
        .ok(
            Method::DELETE,
            &format!("{repo}/manifests/{digest}"),
            keeper,
            None,
            StatusCode::OK,
        )
        .await;
});
