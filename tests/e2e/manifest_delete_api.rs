//! Deleting one artifact by digest with all its tags through the management API
//! (`DELETE /projects/:id/registry/repositories/:repository_id/manifests/:digest`,
//! Maintainer+ with an `api` token, as the registry's `delete` action): the manifest and every tag on it leave `/v2/`, another manifest sharing a
//! layer still pulls whole, the layers are queued for GC review in the same transaction,
//! and refusals (immutable tag, wrong role, bad or unknown digest) change nothing.

use berth_core::Digest;
use berth_db::entity::gc_blob_review_queue as blob_q;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::images::{pull, push_image, tag_list, v2};
use crate::stack_test;

stack_test!(manifest_delete_api, |stack| {
    let group = stack.create_group("md", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let mut pats = Vec::new();
    for (name, level) in [("rep", 20), ("dev", 30), ("keeper", 40)] {
        let id = stack
            .create_user(name, &format!("{name}-password-123"))
            .await;
        stack.add_member("projects", pid, id, level).await;
        pats.push(stack.pat(id, &["api"]).await);
    }
    let (reporter, developer, maintainer) = (&pats[0], &pats[1], &pats[2]);

    let name = "md/app";
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull,push")],
        )
        .await;
    let shared: &[u8] = b"shared-layer";
    let gone = push_image(
        &stack,
        name,
        &jwt,
        "one",
        &[shared, b"own-layer"],
        &["a", "b"],
    )
    .await;
    let kept = push_image(&stack, name, &jwt, "two", &[shared], &["c"]).await;
    assert_eq!(tag_list(&stack, name, &jwt).await, json!(["a", "b", "c"]));

    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories"),
            developer,
            None,
            StatusCode::OK,
        )
        .await;
    let repo_id = repos[0]["id"].as_i64().unwrap();
    let manifests = format!("/projects/{pid}/registry/repositories/{repo_id}/manifests");

    // Refusals change nothing. The registry's `delete` action needs Maintainer (and `api`),
    // so the API's deletion by digest does too: a Developer is refused in both.
    for token in [reporter, developer] {
        let (status, body) = stack
            .call(Method::DELETE, &format!("{manifests}/{gone}"), token, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("{manifests}/sha256:abc"),
            maintainer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unknown = Digest::sha256(b"nothing like it").to_string();
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("{manifests}/{unknown}"),
            maintainer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "404 Manifest Not Found");
    assert_eq!(tag_list(&stack, name, &jwt).await, json!(["a", "b", "c"]));

    // A Maintainer deletes the artifact with both its tags.
    let deleted = stack
        .ok(
            Method::DELETE,
            &format!("{manifests}/{gone}"),
            maintainer,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(deleted, json!({"digest": gone, "tags": ["a", "b"]}));
    assert_eq!(tag_list(&stack, name, &jwt).await, json!(["c"]));
    for reference in [gone.as_str(), "a", "b"] {
        let (status, body) = pull(&stack, name, &jwt, reference).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{reference}: {body}");
        assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN", "{reference}");
    }
    // The other manifest, sharing a layer, still pulls whole.
    for reference in ["c", kept.as_str()] {
        let (status, body) = pull(&stack, name, &jwt, reference).await;
        assert_eq!(status, StatusCode::OK, "{reference}: {body}");
    }
    let r = stack
        .http
        .get(format!(
            "{}/blobs/{}",
            v2(&stack, name),
            Digest::sha256(shared)
        ))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), shared);
    // Its config and layers wait for GC review; nothing was deleted from the store.
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    for blob in [shared, b"own-layer".as_slice()] {
        let rows = blob_q::Entity::find()
            .filter(blob_q::Column::Digest.eq(Digest::sha256(blob).to_string()))
            .filter(blob_q::Column::Event.eq("manifest_delete"))
            .all(&db.read)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
    }
    // Deleting it again: 404.
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("{manifests}/{gone}"),
            maintainer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An immutable rule on one of its tags refuses the whole deletion, Maintainers and
    // admins too.
    stack
        .ok(
            Method::POST,
            &format!("/projects/{pid}/registry/protection/tag/rules"),
            maintainer,
            Some(json!({"tag_name_pattern": "^c$"})),
            StatusCode::CREATED,
        )
        .await;
    for token in [maintainer, &stack.root_token] {
        let (status, body) = stack
            .call(Method::DELETE, &format!("{manifests}/{kept}"), token, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("immutable"),
            "{body}"
        );
    }
    assert_eq!(tag_list(&stack, name, &jwt).await, json!(["c"]));
    assert_eq!(pull(&stack, name, &jwt, &kept).await.0, StatusCode::OK);
});
