//! Deleting one tag through the management API (`DELETE /projects/:id/registry/repositories/
//! :repository_id/tags/:tag_name`, Developer+): the tag leaves `/v2/…/tags/list` at once,
//! other tags on the same manifest still pull, a manifest left untagged is queued for GC
//! review in the same transaction (as the registry's own tag deletion does), unknown tags
//! are 404 and a tag an immutable rule matches is refused with 403.

use berth_core::Digest;
use berth_db::entity::gc_manifest_review_queue as review_q;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::stack::Stack;
use crate::stack_test;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Push a config and a layer seeded with `seed`, then the manifest over them as each of
/// `tags`; returns the manifest digest.
async fn push(stack: &Stack, base: &str, jwt: &str, seed: &str, tags: &[&str]) -> String {
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
    let manifest = crate::support::image_manifest(
        (&Digest::sha256(&config), config.len()),
        &[(&Digest::sha256(&layer), layer.len())],
        json!({}),
    );
    for tag in tags {
        let r = stack
            .http
            .put(format!("{base}/manifests/{tag}"))
            .bearer_auth(jwt)
            .header("content-type", MANIFEST_TYPE)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }
    Digest::sha256(&manifest).to_string()
}

/// `/v2/<repo>/tags/list` (read from the database, not cached).
async fn tag_list(stack: &Stack, base: &str, jwt: &str) -> Value {
    let r = stack
        .http
        .get(format!("{base}/tags/list"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["tags"].clone()
}

/// The status of `GET /v2/<repo>/manifests/<tag>`.
async fn pull(stack: &Stack, base: &str, jwt: &str, tag: &str) -> StatusCode {
    stack
        .http
        .get(format!("{base}/manifests/{tag}"))
        .bearer_auth(jwt)
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap()
        .status()
}

stack_test!(tag_delete_api, |stack| {
    let group = stack.create_group("td", None).await;
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
        pats.push((id, stack.pat(id, &["api"]).await));
    }
    let (reporter, developer, maintainer) = (&pats[0].1, &pats[1].1, &pats[2].1);
    let dev_read_only = stack.pat(pats[1].0, &["read_api"]).await;

    let name = "td/app";
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull,push")],
        )
        .await;
    let base = format!("{}/v2/{name}", stack.registry.url);
    let shared = push(&stack, &base, &jwt, "one", &["a", "b"]).await;
    let lone = push(&stack, &base, &jwt, "two", &["c"]).await;
    assert_eq!(tag_list(&stack, &base, &jwt).await, json!(["a", "b", "c"]));

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
    let tags = format!("/projects/{pid}/registry/repositories/{repo_id}/tags");

    // Developer+ with a write-capable token.
    let (status, body) = stack
        .call(Method::DELETE, &format!("{tags}/a"), reporter, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = stack
        .call(Method::DELETE, &format!("{tags}/a"), &dev_read_only, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(tag_list(&stack, &base, &jwt).await, json!(["a", "b", "c"]));

    // Deleting `a` leaves `b` (same manifest) pulling.
    stack
        .ok(
            Method::DELETE,
            &format!("{tags}/a"),
            developer,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(tag_list(&stack, &base, &jwt).await, json!(["b", "c"]));
    assert_eq!(pull(&stack, &base, &jwt, "b").await, StatusCode::OK);

    // Deleting `c` leaves its manifest untagged and queued for review, in the future.
    stack
        .ok(
            Method::DELETE,
            &format!("{tags}/c"),
            developer,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(tag_list(&stack, &base, &jwt).await, json!(["b"]));
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let manifest = berth_db::manifests::find_by_digest(&db.read, repo_id, &lone)
        .await
        .unwrap()
        .expect("the untagged manifest stays until GC");
    assert!(
        berth_db::tags::for_manifest(&db.read, manifest.id)
            .await
            .unwrap()
            .is_empty()
    );
    let rows = review_q::Entity::find()
        .filter(review_q::Column::RepositoryId.eq(repo_id))
        .filter(review_q::Column::ManifestId.eq(manifest.id))
        .all(&db.read)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].event, "tag_delete");
    assert!(rows[0].review_after > chrono::Utc::now() + chrono::Duration::hours(23));
    // `a`'s manifest was queued too; the review will find it still tagged `b`.
    let kept = berth_db::manifests::find_by_digest(&db.read, repo_id, &shared)
        .await
        .unwrap()
        .expect("manifest of b");
    let kept_rows = review_q::Entity::find()
        .filter(review_q::Column::ManifestId.eq(kept.id))
        .all(&db.read)
        .await
        .unwrap();
    assert_eq!(kept_rows.len(), 1, "{kept_rows:?}");

    // Unknown tags (and repositories of no project of theirs) are 404.
    for path in [format!("{tags}/nope"), format!("{tags}/a")] {
        let (status, body) = stack.call(Method::DELETE, &path, developer, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!(
                "/projects/{pid}/registry/repositories/{}/tags/b",
                repo_id + 1000
            ),
            developer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An immutable rule matching `b` refuses its deletion, for Maintainers too.
    stack
        .ok(
            Method::POST,
            &format!("/projects/{pid}/registry/protection/tag/rules"),
            maintainer,
            Some(json!({"tag_name_pattern": "^b$"})),
            StatusCode::CREATED,
        )
        .await;
    for token in [developer, maintainer] {
        let (status, body) = stack
            .call(Method::DELETE, &format!("{tags}/b"), token, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["message"], "tag is immutable (pattern ^b$)");
    }
    assert_eq!(tag_list(&stack, &base, &jwt).await, json!(["b"]));
    assert_eq!(pull(&stack, &base, &jwt, "b").await, StatusCode::OK);
});
