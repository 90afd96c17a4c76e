//! Cleanup-policy state per repository (m0009) on SQLite and PostgreSQL: a due policy is
//! scheduled once however many schedulers race; one worker per repository at a time; the
//! lease fences a stalled worker off; an unfinished run is claimable again and keeps its
//! start; a run in progress is not restarted by the next schedule; rows go with the
//! repository.

use berth_core::cleanup_policy::Policy;
use berth_db::namespaces::{NewGroup, create_group};
use berth_db::project_admin::{self, NewProject};
use berth_db::repository_cleanups as q;
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};
use sea_orm::EntityTrait;

db_test!(claims_leases_and_resumption);
async fn claims_leases_and_resumption(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let now = Utc::now();
    let group = create_group(
        c,
        NewGroup {
            parent: None,
            path: "acme",
            name: "Acme",
            visibility: "private",
        },
    )
    .await
    .unwrap();
    let new_project = |path: &'static str| NewProject {
        namespace: &group,
        path,
        name: path,
        visibility: "private",
        registry_access: "enabled",
    };
    let app = project_admin::create(c, new_project("app")).await.unwrap();
    let nested_owner = project_admin::create(c, new_project("app-tools"))
        .await
        .unwrap();
    let a = berth_db::repositories::get_or_create(c, "acme/app", now)
        .await
        .unwrap();
    let b = berth_db::repositories::get_or_create(c, "acme/app/worker", now)
        .await
        .unwrap();
    let other = berth_db::repositories::get_or_create(c, "acme/app-tools", now)
        .await
        .unwrap();
    let repos: Vec<i64> = q::project_repositories(c, &app)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(repos, vec![a.id, b.id]);
    assert_eq!(
        q::project_repositories(c, &nested_owner).await.unwrap()[0].id,
        other.id
    );

    // A due policy is scheduled by exactly one of two racing schedulers.
    let due_at = now - Duration::minutes(1);
    let policy = Policy {
        enabled: true,
        ..Policy::default()
    };
    berth_db::expiration_policies::upsert(c, app.id, &policy, Some(due_at))
        .await
        .unwrap();
    let due = q::due_policies(c, now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let from = due[0].next_run_at.unwrap();
    let next = now + Duration::days(1);
    assert!(
        q::advance_policy(c, app.id, from, Some(next))
            .await
            .unwrap()
    );
    assert!(
        !q::advance_policy(c, app.id, from, Some(next))
            .await
            .unwrap()
    );
    assert!(q::due_policies(c, now, 10).await.unwrap().is_empty());
    assert_eq!(q::schedule(c, &repos, from, now).await.unwrap(), 2);
    let s = q::find(c, a.id).await.unwrap().unwrap();
    assert_eq!(s.expiration_policy_cleanup_status, q::SCHEDULED);
    assert_eq!(s.expiration_policy_started_at, Some(from));

    // Two workers: each gets a different repository, a third gets none.
    let lease = now + Duration::seconds(60);
    let w1 = q::claim(c, "w1", lease, now, None, &[])
        .await
        .unwrap()
        .unwrap();
    let w2 = q::claim(c, "w2", lease, now, None, &[])
        .await
        .unwrap()
        .unwrap();
    assert_ne!(w1.repository_id, w2.repository_id);
    assert_eq!(w1.expiration_policy_cleanup_status, q::ONGOING);
    assert!(
        q::claim(c, "w3", lease, now, None, &[])
            .await
            .unwrap()
            .is_none()
    );
    assert!(!q::any_claimable(c, now).await.unwrap());

    // Only the holder renews; w1 is cut short (cap reached) and left unfinished.
    assert!(
        q::renew(c, w1.repository_id, "w1", 100, lease)
            .await
            .unwrap()
    );
    assert!(!q::renew(c, w1.repository_id, "w2", 5, lease).await.unwrap());
    assert!(
        q::finish(c, w1.repository_id, "w1", false, now)
            .await
            .unwrap()
    );
    let s = q::find(c, w1.repository_id).await.unwrap().unwrap();
    assert_eq!(s.expiration_policy_cleanup_status, q::UNFINISHED);
    assert_eq!(s.last_cleanup_deleted_tags_count, Some(100));

    // A schedule while w2's run is ongoing under a live lease leaves it alone; the
    // unfinished one restarts with the new start.
    let later_from = from + Duration::days(1);
    assert_eq!(q::schedule(c, &repos, later_from, now).await.unwrap(), 1);
    let s2 = q::find(c, w2.repository_id).await.unwrap().unwrap();
    assert_eq!(s2.expiration_policy_cleanup_status, q::ONGOING);
    assert_eq!(s2.expiration_policy_started_at, Some(from));

    // The unfinished run is claimable again (not by a tick that skips it) and keeps its
    // start and count across slices.
    assert!(
        q::claim(c, "w3", lease, now, None, &[w1.repository_id])
            .await
            .unwrap()
            .is_none()
    );
    let again = q::claim(c, "w3", lease, now, None, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.repository_id, w1.repository_id);
    assert_eq!(again.expiration_policy_started_at, Some(later_from));
    assert!(
        q::renew(c, again.repository_id, "w3", 7, lease)
            .await
            .unwrap()
    );
    assert!(
        q::finish(c, again.repository_id, "w3", true, now)
            .await
            .unwrap()
    );
    let done = q::find(c, again.repository_id).await.unwrap().unwrap();
    assert_eq!(done.expiration_policy_cleanup_status, q::UNSCHEDULED);
    assert_eq!(done.last_cleanup_deleted_tags_count, Some(7));
    assert!(done.expiration_policy_completed_at.is_some());

    // w2 stalls past its lease: w4 takes the repository over and w2 is fenced off.
    let after_lease = lease + Duration::seconds(1);
    let w4 = q::claim(
        c,
        "w4",
        after_lease + Duration::seconds(60),
        after_lease,
        None,
        &[],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(w4.repository_id, w2.repository_id);
    assert!(!q::renew(c, w2.repository_id, "w2", 1, lease).await.unwrap());
    assert!(
        !q::finish(c, w2.repository_id, "w2", true, now)
            .await
            .unwrap()
    );
    assert!(
        q::finish(c, w4.repository_id, "w4", true, now)
            .await
            .unwrap()
    );

    // Statuses for the API; the row goes with its repository.
    let states = q::for_repositories(c, &[a.id, b.id, other.id])
        .await
        .unwrap();
    assert_eq!(states.len(), 2);
    berth_db::entity::repositories::Entity::delete_by_id(a.id)
        .exec(c)
        .await
        .unwrap();
    assert!(q::find(c, a.id).await.unwrap().is_none());
}
