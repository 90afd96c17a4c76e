//! Deduplicated usage and storage limits (m0007) on SQLite and PostgreSQL:
//! shared blobs count once per scope, index children count through their tagged index,
//! untagged manifests do not count, and the limits of a repository's project and root
//! namespace are found in one query.

use berth_db::entity::{namespaces, projects};
use berth_db::tags;
use berth_db::usage::{self, LimitKind, TagOverride};
use berth_test_support::fixtures::usage::{group, image, index, project, repo, tag};
use berth_test_support::{TestDb, db_test};
use sea_orm::{ActiveModelTrait, Set};

db_test!(dedup_across_projects_indexes_and_untagged);
async fn dedup_across_projects_indexes_and_untagged(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let acme = group(c, None, "acme").await;
    let platform = group(c, Some(&acme), "platform").await;
    let other_root = group(c, None, "acme_other").await;
    project(c, &acme, "web").await;
    project(c, &platform, "api").await;
    project(c, &other_root, "app").await;

    let web = repo(c, "acme/web").await;
    let web_tools = repo(c, "acme/web/tools").await;
    let api = repo(c, "acme/platform/api").await;
    let other = repo(c, "acme_other/app").await;

    // web: config c1 (10) + layers base (1000), app (200).
    let m1 = image(
        c,
        web,
        "sha256:m1",
        ("sha256:c1", 10),
        &[("sha256:base", 1000), ("sha256:app", 200)],
    )
    .await;
    tag(c, web, "v1", m1).await;
    tag(c, web, "latest", m1).await;
    // web/tools shares base: config c2 (20) + base + tool (300).
    let m2 = image(
        c,
        web_tools,
        "sha256:m2",
        ("sha256:c2", 20),
        &[("sha256:base", 1000), ("sha256:tool", 300)],
    )
    .await;
    tag(c, web_tools, "v1", m2).await;
    // An untagged manifest with a big layer counts nowhere.
    image(
        c,
        web,
        "sha256:untagged",
        ("sha256:c9", 9),
        &[("sha256:huge", 1_000_000)],
    )
    .await;

    // api (a subgroup's project): a tagged index with two children (arm shares base).
    let amd = image(
        c,
        api,
        "sha256:amd",
        ("sha256:c3", 30),
        &[("sha256:base", 1000), ("sha256:amd-l", 400)],
    )
    .await;
    let arm = image(
        c,
        api,
        "sha256:arm",
        ("sha256:c4", 40),
        &[("sha256:arm-l", 500)],
    )
    .await;
    let idx = index(c, api, "sha256:idx", vec![amd, arm]).await;
    tag(c, api, "multi", idx).await;

    // Another root namespace whose path starts like "acme" but is not under it.
    let o = image(
        c,
        other,
        "sha256:o",
        ("sha256:c1", 10),
        &[("sha256:other", 7)],
    )
    .await;
    tag(c, other, "x", o).await;

    assert_eq!(
        usage::repository_usage(c, web).await.unwrap(),
        10 + 1000 + 200
    );
    assert_eq!(
        usage::repository_usage(c, web_tools).await.unwrap(),
        20 + 1000 + 300
    );
    assert_eq!(
        usage::repository_usage(c, api).await.unwrap(),
        30 + 1000 + 400 + 40 + 500
    );
    // The project covers its repositories, base once.
    assert_eq!(
        usage::project_usage(c, "acme/web").await.unwrap(),
        10 + 1000 + 200 + 20 + 300
    );
    assert_eq!(
        usage::project_usage(c, "acme/platform/api").await.unwrap(),
        30 + 1000 + 400 + 40 + 500
    );
    // The root namespace covers subgroups too, base once; acme_other is not under acme.
    assert_eq!(
        usage::namespace_usage(c, "acme").await.unwrap(),
        10 + 1000 + 200 + 20 + 300 + 30 + 400 + 40 + 500
    );
    assert_eq!(usage::namespace_usage(c, "acme_other").await.unwrap(), 17);
    // One manifest's closure (the tag API's total_size), index children included.
    assert_eq!(
        usage::manifests_usage(c, &[idx]).await.unwrap(),
        30 + 1000 + 400 + 40 + 500
    );
    assert_eq!(usage::manifests_usage(c, &[]).await.unwrap(), 0);
    assert_eq!(
        berth_db::registry_read::repository_size(c, api)
            .await
            .unwrap(),
        usage::repository_usage(c, api).await.unwrap()
    );

    // "Before" a pending tag write: the tag left out, its previous manifest counted.
    let pending = TagOverride {
        repository_id: api,
        tag: "multi",
        previous: None,
    };
    assert_eq!(
        usage::usage(c, usage::Scope::Path("acme/platform/api"), Some(pending))
            .await
            .unwrap(),
        0
    );
    let moved = TagOverride {
        repository_id: web,
        tag: "v1",
        previous: Some(m2),
    };
    // web:latest still holds m1; v1 "was" m2 (from another repository, fine for the math).
    assert_eq!(
        usage::usage(c, usage::Scope::Repository(web), Some(moved))
            .await
            .unwrap(),
        10 + 1000 + 200 + 20 + 300
    );

    // Deleting the last tag of a repository frees what only it used.
    tags::delete(c, web_tools, "v1").await.unwrap();
    assert_eq!(
        usage::namespace_usage(c, "acme").await.unwrap(),
        10 + 1000 + 200 + 30 + 400 + 40 + 500
    );
}

db_test!(limits_of_project_and_root);
async fn limits_of_project_and_root(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let acme = group(c, None, "acme").await;
    let platform = group(c, Some(&acme), "platform").await;
    let api = project(c, &platform, "api").await;

    let found = usage::limits_for_repository(c, "acme/platform/api/worker")
        .await
        .unwrap()
        .expect("project found");
    assert_eq!(found.project_id, api.id);
    assert_eq!(found.root_namespace_id, Some(acme.id));
    assert!(found.limits.is_empty());
    assert_eq!(
        usage::limits_for_repository(c, "acme/platform/nothing")
            .await
            .unwrap(),
        None
    );

    let mut am: projects::ActiveModel = api.clone().into();
    am.registry_storage_limit = Set(Some(5_000));
    am.update(c).await.unwrap();
    let mut am: namespaces::ActiveModel = acme.clone().into();
    am.registry_storage_limit = Set(Some(9_000));
    am.update(c).await.unwrap();
    // A nested group's limit is not enforced.
    let mut am: namespaces::ActiveModel = platform.clone().into();
    am.registry_storage_limit = Set(Some(1));
    am.update(c).await.unwrap();

    let found = usage::limits_for_repository(c, "acme/platform/api")
        .await
        .unwrap()
        .expect("project found");
    let got: Vec<_> = found
        .limits
        .iter()
        .map(|l| (l.kind, l.path.as_str(), l.bytes))
        .collect();
    assert_eq!(
        got,
        vec![
            (LimitKind::Project, "acme/platform/api", 5_000),
            (LimitKind::Namespace, "acme", 9_000),
        ]
    );

    // Over the project limit after a pending tag write that grew usage.
    let r = repo(c, "acme/platform/api").await;
    let m = image(c, r, "sha256:m", ("sha256:c", 100), &[("sha256:l", 6_000)]).await;
    tag(c, r, "v1", m).await;
    let pending = TagOverride {
        repository_id: r,
        tag: "v1",
        previous: None,
    };
    let over = usage::exceeded(c, &found.limits, pending)
        .await
        .unwrap()
        .expect("exceeded");
    assert_eq!(over.limit.kind, LimitKind::Project);
    assert_eq!(over.usage, 6_100);
    // A second tag on the same image does not grow usage: allowed even over the limit.
    tag(c, r, "v2", m).await;
    let pending = TagOverride {
        repository_id: r,
        tag: "v2",
        previous: None,
    };
    assert_eq!(
        usage::exceeded(c, &found.limits, pending).await.unwrap(),
        None
    );
    // The lock is harmless outside PostgreSQL and inside a transaction on it.
    usage::lock_root_namespace(c, acme.id).await.unwrap();
}
