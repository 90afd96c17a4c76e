//! A registry token is bound to the project it was issued for (issue 12): the registry
//! compares the project id berth-auth wrote into each grant with the project owning the
//! repository now, so a token stops working when its project is deleted and does not carry
//! over to a new project made at the same path.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::matrix::jwt_payload;
use crate::stack::Stack;
use crate::stack_test;

/// `POST /v2/<name>/blobs/uploads/` with `jwt`: the status.
async fn start_upload(stack: &Stack, name: &str, jwt: &str) -> StatusCode {
    stack
        .http
        .post(format!("{}/v2/{name}/blobs/uploads/", stack.registry.url))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap()
        .status()
}

/// `GET /v2/<name>/tags/list` with `jwt`: the status.
async fn list_tags(stack: &Stack, name: &str, jwt: &str) -> StatusCode {
    stack
        .http
        .get(format!("{}/v2/{name}/tags/list", stack.registry.url))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap()
        .status()
}

/// Longer than the registry's project directory cache (2 s).
const DIRECTORY_TTL: Duration = Duration::from_millis(2500);

stack_test!(registry_tokens_are_bound_to_their_project, |stack| {
    let g = stack.create_group("g", None).await["id"].as_i64().unwrap();
    let old = stack.create_project(g, "app", "private", "enabled").await["id"]
        .as_i64()
        .unwrap();
    let dev = stack.create_user("dev", "dev-password-123").await;
    stack.add_member("projects", old, dev, 30).await;
    let pat = stack.pat(dev, &["read_registry", "write_registry"]).await;
    let jwt = stack
        .registry_token(Some(("dev", &pat)), &["repository:g/app:pull,push"])
        .await;
    assert_eq!(jwt_payload(&jwt)["access"][0]["meta"]["project_id"], old);
    assert_eq!(
        list_tags(&stack, "g/app", &jwt).await,
        StatusCode::NOT_FOUND
    );

    // The project goes: its tokens are void, not merely unanswered.
    stack
        .ok(
            Method::DELETE,
            &format!("/projects/{old}"),
            &stack.root_token,
            None,
            StatusCode::ACCEPTED,
        )
        .await;
    tokio::time::sleep(DIRECTORY_TTL).await;
    assert_eq!(
        list_tags(&stack, "g/app", &jwt).await,
        StatusCode::UNAUTHORIZED
    );

    // A new project at the same path, where dev is only a Reporter: the old token does
    // not push there.
    let new = stack.create_project(g, "app", "private", "enabled").await["id"]
        .as_i64()
        .unwrap();
    assert_ne!(new, old);
    stack.add_member("projects", new, dev, 20).await;
    tokio::time::sleep(DIRECTORY_TTL).await;
    assert_eq!(
        start_upload(&stack, "g/app", &jwt).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        list_tags(&stack, "g/app", &jwt).await,
        StatusCode::UNAUTHORIZED
    );
    // A token asked for now is decided for the new project.
    let fresh = stack
        .registry_token(Some(("dev", &pat)), &["repository:g/app:pull,push"])
        .await;
    let access = &jwt_payload(&fresh)["access"][0];
    assert_eq!(access["actions"], json!(["pull"]));
    assert_eq!(access["meta"]["project_id"], new);
    assert_eq!(
        list_tags(&stack, "g/app", &fresh).await,
        StatusCode::NOT_FOUND
    );
});
