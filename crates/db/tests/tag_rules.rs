//! Immutable tag rule queries (migration m0004) on SQLite and PostgreSQL: created, listed
//! oldest first, counted, deleted only within their project, and gone with the project.

use berth_db::entity::{namespaces, projects};
use berth_db::tag_rules;
use berth_test_support::{TestDb, db_test};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};

db_test!(tag_rules_lifecycle);
async fn tag_rules_lifecycle(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let now = Utc::now();
    let group = namespaces::ActiveModel {
        parent_id: Set(None),
        path: Set("acme".into()),
        full_path: Set("acme".into()),
        name: Set("Acme".into()),
        kind: Set("group".into()),
        owner_user_id: Set(None),
        visibility: Set("private".into()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(c)
    .await
    .expect("group");
    let project = |path: &str| projects::ActiveModel {
        namespace_id: Set(group.id),
        path: Set(path.into()),
        full_path: Set(format!("acme/{path}")),
        name: Set(path.into()),
        visibility: Set("private".into()),
        container_registry_access_level: Set("enabled".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let app = project("app").insert(c).await.expect("project");
    let other = project("other").insert(c).await.expect("project");

    assert_eq!(tag_rules::count(c, app.id).await.unwrap(), 0);
    assert!(tag_rules::patterns(c, app.id).await.unwrap().is_empty());
    let first = tag_rules::create(c, app.id, "^v[0-9]+").await.unwrap();
    let second = tag_rules::create(c, app.id, "^release-").await.unwrap();
    tag_rules::create(c, other.id, "^keep$").await.unwrap();
    assert_eq!(tag_rules::count(c, app.id).await.unwrap(), 2);
    assert_eq!(
        tag_rules::patterns(c, app.id).await.unwrap(),
        vec!["^v[0-9]+".to_owned(), "^release-".to_owned()]
    );
    let listed = tag_rules::list(c, app.id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second]);

    // A rule is deleted only through its own project.
    assert!(!tag_rules::delete(c, other.id, first.id).await.unwrap());
    assert!(tag_rules::delete(c, app.id, first.id).await.unwrap());
    assert!(!tag_rules::delete(c, app.id, first.id).await.unwrap());
    assert_eq!(
        tag_rules::patterns(c, app.id).await.unwrap(),
        vec!["^release-".to_owned()]
    );

    // Deleting a project takes its rules with it.
    projects::Entity::delete_by_id(app.id)
        .exec(c)
        .await
        .expect("delete project");
    assert_eq!(tag_rules::count(c, app.id).await.unwrap(), 0);
    assert_eq!(tag_rules::count(c, other.id).await.unwrap(), 1);
}
