//! Cleanup-policy queries (migration m0005) on SQLite and PostgreSQL: absent until stored,
//! inserted then replaced in place, read for several projects at once, and gone with the
//! project.

use berth_core::cleanup_policy::Policy;
use berth_db::entity::projects;
use berth_db::expiration_policies as q;
use berth_db::namespaces::{NewGroup, create_group};
use berth_db::project_admin::{self, NewProject};
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};
use sea_orm::EntityTrait;

db_test!(expiration_policies_lifecycle);
async fn expiration_policies_lifecycle(db: TestDb) {
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
    .expect("group");
    let project = |path: &'static str| {
        project_admin::create(
            c,
            NewProject {
                namespace: &group,
                path,
                name: path,
                visibility: "private",
                registry_access: "enabled",
            },
        )
    };
    let app = project("app").await.expect("project");
    let other = project("other").await.expect("project");

    assert!(q::get(c, app.id).await.unwrap().is_none());
    assert!(
        q::for_projects(c, [app.id, other.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(q::for_projects(c, []).await.unwrap().is_empty());

    // Insert.
    let first = q::upsert(c, app.id, &Policy::default(), None)
        .await
        .unwrap();
    assert_eq!(q::policy(&first), Policy::default());
    assert_eq!(first.next_run_at, None);
    assert_eq!(q::get(c, app.id).await.unwrap(), Some(first.clone()));

    // Replace in place: every setting and the schedule change, created_at stays.
    let on = Policy {
        cadence: "7d".into(),
        enabled: true,
        keep_n: Some(5),
        older_than: None,
        name_regex: Some("v.*".into()),
        name_regex_keep: Some("^release".into()),
    };
    let due = now + Duration::days(7);
    let second = q::upsert(c, app.id, &on, Some(due)).await.unwrap();
    assert_eq!(q::policy(&second), on);
    let stored = second.next_run_at.expect("scheduled");
    assert!(
        (stored - due).num_milliseconds().abs() < 1000,
        "{stored} vs {due}"
    );
    assert_eq!(
        second.created_at.timestamp(),
        first.created_at.timestamp(),
        "created_at kept"
    );
    assert!(second.updated_at >= first.updated_at);

    q::upsert(c, other.id, &Policy::default(), None)
        .await
        .unwrap();
    let mut both = q::for_projects(c, [app.id, other.id]).await.unwrap();
    both.sort_by_key(|m| m.project_id);
    assert_eq!(
        both.iter().map(|m| m.project_id).collect::<Vec<_>>(),
        vec![app.id, other.id]
    );
    assert_eq!(q::policy(&both[0]), on);

    // Deleting a project takes its policy with it.
    projects::Entity::delete_by_id(app.id)
        .exec(c)
        .await
        .expect("delete project");
    assert!(q::get(c, app.id).await.unwrap().is_none());
    assert!(q::get(c, other.id).await.unwrap().is_some());
}
