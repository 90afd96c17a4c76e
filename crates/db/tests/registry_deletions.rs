//! Claiming registry deletions (m0006) on SQLite and PostgreSQL: one owner per request,
//! requests for one repository one after another, a run-out lease taken over, and the
//! old owner's writes refused afterwards (fencing).

use berth_db::registry_deletions::{self as q, NewDeletion};
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};

fn new(repository_id: i64, kind: &'static str) -> NewDeletion<'static> {
    NewDeletion {
        repository_id,
        repository_path: "g/p",
        project_id: 1,
        kind,
        params: "{}".into(),
    }
}

db_test!(claims_are_exclusive_and_ordered_per_repository);
async fn claims_are_exclusive_and_ordered_per_repository(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.unwrap();
    berth_db::migrate(&conn).await.unwrap();
    let c = &conn.write;
    let now = Utc::now();
    let lease = now + Duration::seconds(30);
    let first = q::schedule(c, new(1, q::KIND_TAGS), now).await.unwrap();
    let second = q::schedule(c, new(1, q::KIND_REPOSITORY), now)
        .await
        .unwrap();
    let other = q::schedule(c, new(2, q::KIND_TAGS), now).await.unwrap();
    assert_eq!(first.status, q::SCHEDULED);

    // The oldest request of repository 1, then repository 2's (1's second waits), then none.
    let a = q::claim(c, "a", lease, now).await.unwrap().unwrap();
    assert_eq!((a.id, a.status.as_str()), (first.id, q::RUNNING));
    assert!(a.started_at.is_some());
    let b = q::claim(c, "b", lease, now).await.unwrap().unwrap();
    assert_eq!(b.id, other.id);
    assert!(q::claim(c, "c", lease, now).await.unwrap().is_none());

    // Only the owner renews or finishes.
    assert!(!q::renew(c, first.id, "b", 1, lease).await.unwrap());
    assert!(q::renew(c, first.id, "a", 2, lease).await.unwrap());
    assert!(
        !q::finish(c, first.id, "c", q::DONE, None, now)
            .await
            .unwrap()
    );
    assert!(
        q::finish(c, first.id, "a", q::DONE, None, now)
            .await
            .unwrap()
    );
    let done = q::find(c, first.id).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.deleted_count), (q::DONE, 2));

    // Repository 1's next request is due now; GitLab's status shows it.
    let statuses = q::repository_statuses(c, &[1, 2]).await.unwrap();
    assert_eq!(statuses.get(&1), Some(&"delete_scheduled"));
    assert_eq!(statuses.get(&2), None);
    let c2 = q::claim(c, "c", lease, now).await.unwrap().unwrap();
    assert_eq!(c2.id, second.id);
    assert_eq!(
        q::repository_statuses(c, &[1]).await.unwrap().get(&1),
        Some(&"delete_ongoing")
    );
    assert_eq!(
        q::pending_repository_deletion(c, 1)
            .await
            .unwrap()
            .map(|d| d.id),
        Some(second.id)
    );

    // "b" dies: once its lease has run out, "d" takes the request over and "b" is fenced off.
    let later = lease + Duration::seconds(1);
    assert!(
        q::renew(c, second.id, "c", 0, later + Duration::hours(1))
            .await
            .unwrap()
    );
    let d = q::claim(c, "d", later + Duration::seconds(30), later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id, other.id);
    assert_eq!(d.started_at, b.started_at, "started_at is kept on resume");
    assert!(!q::renew(c, other.id, "b", 1, later).await.unwrap());
    assert!(
        !q::finish(c, other.id, "b", q::FAILED, None, later)
            .await
            .unwrap()
    );

    // A released request (graceful shutdown) is due at once for anyone.
    q::release(c, other.id, "d").await.unwrap();
    let e = q::claim(c, "e", lease, now).await.unwrap().unwrap();
    assert_eq!(e.id, other.id);
    assert!(
        q::finish(c, other.id, "e", q::FAILED, Some("x".into()), now)
            .await
            .unwrap()
    );
    assert_eq!(
        q::repository_statuses(c, &[2]).await.unwrap().get(&2),
        None,
        "a failed bulk tag deletion is not a repository status"
    );
    let listed = q::for_project(c, 1, Some(2), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].error.as_deref(), Some("x"));
}
