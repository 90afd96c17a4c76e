//! Immutable tag rule queries (migration m0004) on SQLite and PostgreSQL: created, listed
//! oldest first, counted, deleted only within their project, and gone with the project.

use berth_db::entity::projects;
use berth_db::namespaces::{NewGroup, create_group};
use berth_db::project_admin::{self, NewProject};
use berth_db::tag_rules;
use berth_test_support::{TestDb, db_test};
use sea_orm::EntityTrait;

db_test!(tag_rules_lifecycle);
async fn tag_rules_lifecycle(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
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
