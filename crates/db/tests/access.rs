//! The lookups behind access decisions on SQLite and PostgreSQL: the project owning a
//! repository path, namespace chains, effective roles through nested groups (highest wins,
//! expired memberships ignored) and the job-token allowlist through a group.

use berth_db::access as q;
use berth_db::entity::{job_token_allowlist, members, namespaces, projects};
use berth_db::namespaces::{NewGroup, create_group};
use berth_db::project_admin::NewProject;
use berth_db::users::{NewUser, create};
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

async fn group(
    c: &impl ConnectionTrait,
    parent: Option<&namespaces::Model>,
    path: &str,
) -> namespaces::Model {
    let new = NewGroup {
        parent,
        path,
        name: path,
        visibility: "private",
    };
    create_group(c, new).await.expect("group")
}

async fn project(c: &impl ConnectionTrait, ns: &namespaces::Model, path: &str) -> projects::Model {
    let new = NewProject {
        namespace: ns,
        path,
        name: path,
        visibility: "private",
        registry_access: "enabled",
    };
    berth_db::project_admin::create(c, new)
        .await
        .expect("project")
}

async fn member(
    c: &impl ConnectionTrait,
    source: (&str, i64),
    user: i64,
    level: i32,
    expires_at: Option<chrono::DateTime<Utc>>,
) {
    members::ActiveModel {
        source_type: Set(source.0.into()),
        source_id: Set(source.1),
        user_id: Set(user),
        access_level: Set(level),
        expires_at: Set(expires_at),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(c)
    .await
    .expect("member");
}

async fn user(c: &impl ConnectionTrait, name: &str) -> i64 {
    let email = format!("{name}@example.com");
    create(
        c,
        NewUser {
            username: name,
            email: &email,
            name,
            password_hash: None,
            admin: false,
            bot: false,
        },
    )
    .await
    .expect("user")
    .id
}

db_test!(access_lookups);
async fn access_lookups(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let now = Utc::now();
    let acme = group(c, None, "acme").await;
    let platform = group(c, Some(&acme), "platform").await;
    let other = group(c, None, "other").await;
    let api = project(c, &platform, "api").await;
    let lib = project(c, &other, "lib").await;

    // Repository paths: the project plus at most two segments.
    for (path, want) in [
        ("acme/platform/api", Some(api.id)),
        ("acme/platform/api/worker", Some(api.id)),
        ("acme/platform/api/tools/lint", Some(api.id)),
        ("acme/platform/api/a/b/c", None),
        ("acme/platform", None),
        ("acme", None),
        ("other/lib/x", Some(lib.id)),
    ] {
        let got = q::project_for_repository(c, path)
            .await
            .unwrap()
            .map(|p| p.id);
        assert_eq!(got, want, "{path}");
    }

    let chain = q::namespace_chain(c, &platform.full_path).await.unwrap();
    let chain: Vec<i64> = chain.iter().map(|n| n.id).collect();
    assert_eq!(chain, vec![acme.id, platform.id], "root first");

    let alice = user(c, "alice").await;
    let bob = user(c, "bob").await;
    let carol = user(c, "carol").await;
    // alice: Reporter through the root group, Developer on the project: Developer wins.
    member(c, ("namespace", acme.id), alice, 20, None).await;
    member(c, ("project", api.id), alice, 30, None).await;
    // bob: Maintainer on the subgroup, but expired; Guest on the root group still holds.
    member(
        c,
        ("namespace", platform.id),
        bob,
        40,
        Some(now - Duration::hours(1)),
    )
    .await;
    member(
        c,
        ("namespace", acme.id),
        bob,
        10,
        Some(now + Duration::days(1)),
    )
    .await;
    // carol: Owner of another group only.
    member(c, ("namespace", other.id), carol, 50, None).await;
    let level = |u| q::effective_level(c, u, api.id, &chain, now);
    assert_eq!(level(alice).await.unwrap(), Some(30));
    assert_eq!(level(bob).await.unwrap(), Some(10));
    assert_eq!(level(carol).await.unwrap(), None);
    assert_eq!(
        q::effective_namespace_level(c, alice, &chain, now)
            .await
            .unwrap(),
        Some(20),
        "project membership does not count on the group"
    );

    // The allowlist of `other/lib` names the group `acme`: jobs of acme/platform/api may
    // pull there; jobs of other/lib itself are a different question (own project).
    assert!(
        !q::allowlist_admits(c, lib.id, api.id, &chain)
            .await
            .unwrap()
    );
    job_token_allowlist::ActiveModel {
        project_id: Set(lib.id),
        source_project_id: Set(None),
        source_namespace_id: Set(Some(acme.id)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(c)
    .await
    .expect("allowlist");
    assert!(
        q::allowlist_admits(c, lib.id, api.id, &chain)
            .await
            .unwrap()
    );
    assert!(
        !q::allowlist_admits(c, api.id, lib.id, &[other.id])
            .await
            .unwrap()
    );
}
