//! Query functions and schema guarantees, on SQLite and PostgreSQL (a fresh database each).

use berth_db::entity::{blobs as blob_rows, gc_blob_review_queue};
use berth_db::manifests::{NewLayer, NewManifest};
use berth_db::{Db, blobs, gc, manifests, repositories, tags};
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};
use sea_orm::{EntityTrait, PaginatorTrait};

async fn migrated(db: &TestDb) -> Db {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    conn
}

db_test!(migrations_are_idempotent_and_safe_in_parallel);
async fn migrations_are_idempotent_and_safe_in_parallel(db: TestDb) {
    // Several processes starting at once all migrate; none fails.
    let (a, b, c) = tokio::join!(migrated(&db), migrated(&db), migrated(&db));
    berth_db::migrate(&a).await.expect("re-run");
    for conn in [&a, &b, &c] {
        assert!(
            repositories::find_by_name(&conn.read, "x/y")
                .await
                .unwrap()
                .is_none()
        );
    }
}

db_test!(repository_get_or_create_is_stable);
async fn repository_get_or_create_is_stable(db: TestDb) {
    let conn = migrated(&db).await;
    let now = Utc::now();
    let a = repositories::get_or_create(&conn.write, "acme/app", now)
        .await
        .unwrap();
    let b = repositories::get_or_create(&conn.write, "acme/app", now)
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    let names = repositories::list_names(&conn.read, None, 10)
        .await
        .unwrap();
    assert_eq!(names, vec!["acme/app".to_string()]);
}

db_test!(review_queue_postpones_instead_of_duplicating);
async fn review_queue_postpones_instead_of_duplicating(db: TestDb) {
    let conn = migrated(&db).await;
    let now = Utc::now();
    gc::enqueue_blob(
        &conn.write,
        "sha256:aa",
        gc::Event::BlobUpload,
        now + Duration::hours(1),
        now,
    )
    .await
    .unwrap();
    gc::enqueue_blob(
        &conn.write,
        "sha256:aa",
        gc::Event::ManifestDelete,
        now + Duration::hours(2),
        now,
    )
    .await
    .unwrap();
    let rows = gc_blob_review_queue::Entity::find()
        .all(&conn.read)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event, "manifest_delete");
    assert!(rows[0].review_after > now + Duration::minutes(90));
}

db_test!(referenced_blob_rows_cannot_be_deleted);
async fn referenced_blob_rows_cannot_be_deleted(db: TestDb) {
    let conn = migrated(&db).await;
    let now = Utc::now();
    let repo = repositories::get_or_create(&conn.write, "acme/app", now)
        .await
        .unwrap();
    for d in ["sha256:config", "sha256:layer"] {
        blobs::insert(&conn.write, d, 10, now).await.unwrap();
        blobs::link(&conn.write, repo.id, d, now).await.unwrap();
    }
    let m = NewManifest {
        repository_id: repo.id,
        digest: "sha256:m1".into(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        subject_digest: None,
        config_digest: Some("sha256:config".into()),
        payload: b"{}".to_vec(),
    };
    let layer = NewLayer {
        digest: "sha256:layer".into(),
        media_type: "x".into(),
        size: 10,
    };
    let id = manifests::insert(&conn.write, m, vec![layer], vec![], now)
        .await
        .unwrap();
    // The schema itself refuses to drop bytes' rows a manifest still uses: a last line of
    // defence should a GC bug ever try.
    for d in ["sha256:config", "sha256:layer"] {
        let err = blob_rows::Entity::delete_by_id(d.to_string())
            .exec(&conn.write)
            .await
            .unwrap_err();
        assert!(berth_db::is_fk_violation(&err), "{d}: {err}");
    }
    let linked = blobs::linked_among(
        &conn.read,
        repo.id,
        vec!["sha256:layer".into(), "sha256:nope".into()],
    )
    .await
    .unwrap();
    assert_eq!(linked, vec!["sha256:layer".to_string()]);
    // Tags move and report the manifest they left.
    assert_eq!(
        tags::upsert(&conn.write, repo.id, "v1", id, now)
            .await
            .unwrap(),
        None
    );
    let m2 = NewManifest {
        repository_id: repo.id,
        digest: "sha256:m2".into(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        subject_digest: None,
        config_digest: Some("sha256:config".into()),
        payload: b"{ }".to_vec(),
    };
    let id2 = manifests::insert(&conn.write, m2, vec![], vec![], now)
        .await
        .unwrap();
    assert_eq!(
        tags::upsert(&conn.write, repo.id, "v1", id2, now)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        manifests::find_by_tag(&conn.read, repo.id, "v1")
            .await
            .unwrap()
            .unwrap()
            .id,
        id2
    );
    // Deleting a manifest takes its layers and tags with it.
    manifests::delete(&conn.write, id2).await.unwrap();
    assert!(
        tags::find(&conn.read, repo.id, "v1")
            .await
            .unwrap()
            .is_none()
    );
    manifests::delete(&conn.write, id).await.unwrap();
    assert_eq!(
        berth_db::entity::layers::Entity::find()
            .count(&conn.read)
            .await
            .unwrap(),
        0
    );
    blob_rows::Entity::delete_by_id("sha256:layer".to_string())
        .exec(&conn.write)
        .await
        .unwrap();
}
