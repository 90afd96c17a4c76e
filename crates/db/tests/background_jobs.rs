//! Claiming background jobs (m0010) on SQLite and PostgreSQL: one owner per job, one
//! repository's jobs one after another, a run-out lease taken over and the old owner's
//! writes refused afterwards (fencing), retries waiting for `run_after`, and concurrent
//! claimers each getting a different job.

use berth_core::jobs::{BulkRules, JobPayload, RepositoryTarget};
use berth_db::background_jobs::{self as q, DeletionStatus};
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};

fn target(repository_id: i64) -> RepositoryTarget {
    RepositoryTarget {
        repository_id,
        repository_path: format!("g/p/r{repository_id}"),
        project_id: Some(1),
    }
}

fn repository(repository_id: i64) -> JobPayload {
    JobPayload::DeleteRepository(target(repository_id))
}

fn tags(repository_id: i64) -> JobPayload {
    JobPayload::DeleteTags {
        target: target(repository_id),
        rules: BulkRules {
            name_regex_delete: ".*".into(),
            name_regex_keep: None,
            keep_n: None,
            older_than: None,
        },
    }
}

/// Claim in a write transaction of its own, as the worker does.
async fn claim(
    db: &berth_db::Db,
    owner: &str,
    lease: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
) -> Option<berth_db::entity::jobs::Model> {
    let txn = db.begin_write().await.unwrap();
    let job = q::claim(&txn, owner, lease, now).await.unwrap();
    txn.commit().await.unwrap();
    job
}

db_test!(claims_are_exclusive_and_ordered_per_repository);
async fn claims_are_exclusive_and_ordered_per_repository(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.unwrap();
    berth_db::migrate(&conn).await.unwrap();
    let c = &conn.write;
    let now = Utc::now();
    let lease = now + Duration::seconds(30);
    let first = q::enqueue(c, &tags(1), now).await.unwrap();
    let second = q::enqueue(c, &repository(1), now).await.unwrap();
    let other = q::enqueue(c, &tags(2), now).await.unwrap();
    assert_eq!(
        (first.state.as_str(), first.kind.as_str()),
        ("queued", "delete_tags")
    );
    assert_eq!(
        JobPayload::parse(berth_core::jobs::JobKind::DeleteTags, &first.payload).unwrap(),
        tags(1)
    );

    // The oldest job of repository 1, then repository 2's (1's second waits), then none.
    let a = claim(&conn, "a", lease, now).await.unwrap();
    assert_eq!(
        (a.id, a.state.as_str(), a.attempts),
        (first.id, "running", 1)
    );
    assert!(a.started_at.is_some());
    let b = claim(&conn, "b", lease, now).await.unwrap();
    assert_eq!(b.id, other.id);
    assert!(claim(&conn, "c", lease, now).await.is_none());
    assert!(!q::any_due(c, now).await.unwrap());

    // Only the owner renews or finishes.
    assert!(!q::renew(c, first.id, "b", 1, lease).await.unwrap());
    assert!(q::renew(c, first.id, "a", 2, lease).await.unwrap());
    assert!(!q::finish(c, first.id, "c", None, now).await.unwrap());
    assert!(q::finish(c, first.id, "a", None, now).await.unwrap());
    let done = q::find(c, first.id).await.unwrap().unwrap();
    assert_eq!((done.state.as_str(), done.progress), ("succeeded", 2));

    // Repository 1's next job is due now; GitLab's status shows it.
    let statuses = q::repository_statuses(c, &[1, 2]).await.unwrap();
    assert_eq!(statuses.get(&1), Some(&DeletionStatus::Scheduled));
    assert_eq!(statuses.get(&2), None);
    let c2 = claim(&conn, "c", lease, now).await.unwrap();
    assert_eq!(c2.id, second.id);
    assert_eq!(
        q::repository_statuses(c, &[1]).await.unwrap().get(&1),
        Some(&DeletionStatus::Ongoing)
    );
    assert_eq!(
        q::pending_repository_deletion(c, 1)
            .await
            .unwrap()
            .map(|d| d.id),
        Some(second.id)
    );

    // "b" dies: once its lease has run out, "d" takes the job over (a second attempt) and
    // "b" is fenced off.
    let later = lease + Duration::seconds(1);
    assert!(
        q::renew(c, second.id, "c", 0, later + Duration::hours(1))
            .await
            .unwrap()
    );
    let d = claim(&conn, "d", later + Duration::seconds(30), later)
        .await
        .unwrap();
    assert_eq!((d.id, d.attempts), (other.id, 2));
    assert_eq!(d.started_at, b.started_at, "started_at is kept on resume");
    assert!(!q::renew(c, other.id, "b", 1, later).await.unwrap());
    assert!(!q::finish(c, other.id, "b", Some("x"), later).await.unwrap());

    // A released job (graceful shutdown) is due at once, without counting the attempt.
    assert!(q::release(c, other.id, "d", later).await.unwrap());
    let e = claim(&conn, "e", lease, now).await.unwrap();
    assert_eq!((e.id, e.attempts), (other.id, 2));

    // A failed attempt waits for its run_after, then runs again.
    let retry_at = now + Duration::seconds(10);
    assert!(
        q::retry_later(c, other.id, "e", "boom", retry_at, now)
            .await
            .unwrap()
    );
    assert!(claim(&conn, "f", lease, now).await.is_none());
    let f = claim(&conn, "f", retry_at + Duration::seconds(30), retry_at)
        .await
        .unwrap();
    assert_eq!((f.id, f.last_error.as_deref()), (other.id, Some("boom")));
    assert!(q::finish(c, other.id, "f", Some("x"), now).await.unwrap());
    assert_eq!(
        q::repository_statuses(c, &[2]).await.unwrap().get(&2),
        None,
        "a failed bulk tag deletion is not a repository status"
    );
    let listed = q::for_project(c, 1, Some(2), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].state.as_str(), listed[0].last_error.as_deref()),
        ("failed", Some("x"))
    );

    // A failed repository deletion shows its reason.
    assert!(
        q::finish(c, second.id, "c", Some("immutable"), later)
            .await
            .unwrap()
    );
    assert_eq!(
        q::repository_statuses(c, &[1]).await.unwrap().get(&1),
        Some(&DeletionStatus::Failed("immutable".into()))
    );
    assert_eq!(q::depths(c).await.unwrap(), (0, 0));
}

db_test!(concurrent_claimers_get_different_jobs);
async fn concurrent_claimers_get_different_jobs(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.unwrap();
    berth_db::migrate(&conn).await.unwrap();
    let now = Utc::now();
    let n = 24;
    for r in 0..n {
        q::enqueue(&conn.write, &repository(100 + r), now)
            .await
            .unwrap();
    }
    // Each claimer its own connection pool, as separate processes would have.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let db = berth_db::connect(&url).await.unwrap();
            let mut won = Vec::new();
            let lease = Utc::now() + Duration::minutes(5);
            while let Some(job) = claim(&db, &format!("w{w}"), lease, Utc::now()).await {
                won.push(job.id);
            }
            won
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a job was claimed twice");
    assert_eq!(all.len(), n as usize);
    assert_eq!(q::depths(&conn.read).await.unwrap(), (0, n as u64));
}
