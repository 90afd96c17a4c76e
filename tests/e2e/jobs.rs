//! Background jobs run by berth-gc, end to end: two berth-gc processes and one berth-auth
//! (which runs no worker). A 5,000-tag bulk deletion and a repository deletion requested
//! through the API complete; the berth-gc holding the bulk job is killed (SIGKILL) mid-way
//! and the other finishes it after the lease; nothing is deleted twice or left behind. And
//! deleting a user collects their personal namespace's images.

use std::time::{Duration, Instant};

use berth_db::entity::{gc_blob_review_queue as blob_q, gc_manifest_review_queue as manifest_q};
use berth_db::entity::{manifests, tags};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::json;

use crate::registry_deletions::{project, push, repository_id};
use crate::stack_test;

/// Two workers' settings: a 3 s lease and small batches, so a kill lands mid-run.
const GC_ENV: [(&str, &str); 5] = [
    ("BERTH_JOB_POLL_INTERVAL", "100ms"),
    ("BERTH_JOB_LEASE", "3s"),
    ("BERTH_JOB_BATCH_SIZE", "50"),
    ("BERTH_GC_BLOB_WORKERS", "0"),
    ("BERTH_GC_MANIFEST_WORKERS", "0"),
];

/// Wait until job `id` is finished (at most `secs`); returns it.
async fn finished(db: &berth_db::Db, id: i64, secs: u64) -> berth_db::entity::jobs::Model {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = berth_db::background_jobs::find(&db.read, id)
            .await
            .unwrap()
            .unwrap();
        if j.state == "succeeded" || j.state == "failed" {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_tags(db: &berth_db::Db, repo: i64) -> u64 {
    tags::Entity::find()
        .filter(tags::Column::RepositoryId.eq(repo))
        .count(&db.read)
        .await
        .unwrap()
}

stack_test!(two_gc_processes_share_jobs_and_survive_a_kill, |stack| {
    let (pid, _, maintainer) = project(&stack, "acc").await;
    let (big, small) = ("acc/app/big", "acc/app/small");
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[
                &format!("repository:{big}:pull,push"),
                &format!("repository:{small}:pull,push"),
            ],
        )
        .await;
    let base_big = format!("{}/v2/{big}", stack.registry.url);
    let base_small = format!("{}/v2/{small}", stack.registry.url);
    push(&stack, &base_big, &jwt, "big", &[b"big layer"], &["seed"]).await;
    push(
        &stack,
        &base_small,
        &jwt,
        "small",
        &[b"small layer"],
        &["v1", "v2"],
    )
    .await;
    let big_id = repository_id(&stack, pid, big, &maintainer).await.unwrap();
    let small_id = repository_id(&stack, pid, small, &maintainer)
        .await
        .unwrap();

    // 5,000 tags on the seed image, written straight into the database.
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let seed = tags::Entity::find()
        .filter(tags::Column::RepositoryId.eq(big_id))
        .one(&db.read)
        .await
        .unwrap()
        .unwrap();
    let at = chrono::Utc::now() - chrono::Duration::minutes(1);
    for chunk in (0..5000).collect::<Vec<_>>().chunks(500) {
        let rows = chunk.iter().map(|i| tags::ActiveModel {
            repository_id: Set(big_id),
            name: Set(format!("t{i:04}")),
            manifest_id: Set(seed.manifest_id),
            created_at: Set(at),
            updated_at: Set(at),
            last_pulled_at: Set(None),
            pull_count: Set(0),
            ..Default::default()
        });
        tags::Entity::insert_many(rows)
            .exec_without_returning(&db.write)
            .await
            .unwrap();
    }
    assert_eq!(count_tags(&db, big_id).await, 5001);

    let mut gcs = [stack.start_gc(&GC_ENV).await, stack.start_gc(&GC_ENV).await];
    let bulk = stack
        .ok(
            Method::DELETE,
            &format!("/projects/{pid}/registry/repositories/{big_id}/tags"),
            &maintainer,
            Some(json!({"name_regex_delete": "t.*"})),
            StatusCode::ACCEPTED,
        )
        .await;
    let whole = stack
        .ok(
            Method::DELETE,
            &format!("/projects/{pid}/registry/repositories/{small_id}"),
            &maintainer,
            None,
            StatusCode::ACCEPTED,
        )
        .await;
    let bulk_id = bulk["id"].as_i64().unwrap();

    // Find the process holding the bulk job once it is under way, and kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        let j = berth_db::background_jobs::find(&db.read, bulk_id)
            .await
            .unwrap()
            .unwrap();
        if j.state == "running" && j.progress > 0 {
            break j;
        }
        assert_ne!(j.state, "succeeded", "finished before the kill: {j:?}");
        assert!(
            Instant::now() < deadline,
            "the bulk job did not start: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let owner = holder.lease_owner.clone().unwrap();
    let victim = gcs
        .iter()
        .position(|g| owner.starts_with(&format!("gc-{}-", g.pid())))
        .unwrap_or_else(|| panic!("no berth-gc holds the job as {owner}"));
    gcs[victim].pause();
    let at_kill = berth_db::background_jobs::find(&db.read, bulk_id)
        .await
        .unwrap()
        .unwrap();
    gcs[victim].kill();
    eprintln!(
        "killed the berth-gc holding the bulk job after {} of 5000 tags",
        at_kill.progress
    );
    assert!(at_kill.progress < 5000, "{at_kill:?}");

    let done = finished(&db, bulk_id, 120).await;
    assert_eq!(done.state, "succeeded", "{done:?}");
    assert_eq!(
        done.progress, 5000,
        "every tag counted exactly once: {done:?}"
    );
    assert_eq!(done.attempts, 2, "{done:?}");
    assert_ne!(done.lease_owner.as_deref(), Some(owner.as_str()));
    let whole = finished(&db, whole["id"].as_i64().unwrap(), 60).await;
    assert_eq!(whole.state, "succeeded", "{whole:?}");

    // Nothing left behind: only `seed` in the big repository; the small one is gone with
    // its tags and manifests; GC review rows wait for what lost its references.
    let left: Vec<String> = tags::Entity::find()
        .filter(tags::Column::RepositoryId.eq(big_id))
        .all(&db.read)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(left, ["seed"]);
    assert_eq!(count_tags(&db, small_id).await, 0);
    let small_manifests = manifests::Entity::find()
        .filter(manifests::Column::RepositoryId.eq(small_id))
        .count(&db.read)
        .await
        .unwrap();
    assert_eq!(small_manifests, 0);
    assert!(
        berth_db::repositories::find_by_name(&db.read, small)
            .await
            .unwrap()
            .is_none()
    );
    let review = manifest_q::Entity::find()
        .filter(manifest_q::Column::RepositoryId.eq(big_id))
        .filter(manifest_q::Column::ManifestId.eq(seed.manifest_id))
        .count(&db.read)
        .await
        .unwrap();
    assert_eq!(review, 1, "the seed manifest lost 5000 tags: reviewed once");
    let small_layer = berth_core::Digest::sha256(b"small layer").to_string();
    assert!(
        blob_q::Entity::find_by_id(small_layer)
            .one(&db.read)
            .await
            .unwrap()
            .is_some(),
        "the deleted repository's layer waits for GC review"
    );
    // berth-auth ran none of it.
    let auth_log = std::fs::read_to_string(stack.logs.path().join("auth.err")).unwrap_or_default();
    assert!(!auth_log.contains("running job"), "{auth_log}");
});

stack_test!(deleting_a_user_collects_their_namespace, |stack| {
    let _gc = stack.start_gc(&GC_ENV).await;
    let user = stack.create_user("leaver", "a-password-1234").await;
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let ns = berth_db::namespaces::personal(&db.read, user)
        .await
        .unwrap()
        .unwrap();
    stack
        .create_project(ns.id, "app", "private", "enabled")
        .await;
    let name = "leaver/app/img";
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull,push")],
        )
        .await;
    let base = format!("{}/v2/{name}", stack.registry.url);
    push(
        &stack,
        &base,
        &jwt,
        "leaver",
        &[b"leaver layer"],
        &["v1", "v2"],
    )
    .await;
    let repo = berth_db::repositories::find_by_name(&db.read, name)
        .await
        .unwrap()
        .unwrap();

    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/users/{user}"),
            &stack.root_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while berth_db::repositories::find_by_name(&db.read, name)
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "{name} outlived its user");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count_tags(&db, repo.id).await, 0);
    let left = manifests::Entity::find()
        .filter(manifests::Column::RepositoryId.eq(repo.id))
        .count(&db.read)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let layer = berth_core::Digest::sha256(b"leaver layer").to_string();
    assert!(
        blob_q::Entity::find_by_id(layer)
            .one(&db.read)
            .await
            .unwrap()
            .is_some()
    );
});
