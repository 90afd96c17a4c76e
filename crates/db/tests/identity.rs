//! The identity schema (migration m0002) on SQLite and PostgreSQL: rows fit, secrets'
//! digests are unique, and a user's tokens and memberships go with the user.

use berth_db::entity::{members, namespaces, personal_access_tokens as pats, projects, users};
use berth_test_support::{TestDb, db_test};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};

db_test!(identity_rows_and_cascades);
async fn identity_rows_and_cascades(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let now = Utc::now();
    let user = users::ActiveModel {
        username: Set("alice".into()),
        email: Set("alice@example.com".into()),
        name: Set("Alice".into()),
        password_hash: Set(None),
        admin: Set(false),
        bot: Set(false),
        state: Set("active".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(c)
    .await
    .expect("user");
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
    projects::ActiveModel {
        namespace_id: Set(group.id),
        path: Set("app".into()),
        full_path: Set("acme/app".into()),
        name: Set("App".into()),
        visibility: Set("private".into()),
        container_registry_access_level: Set("enabled".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(c)
    .await
    .expect("project");
    members::ActiveModel {
        source_type: Set("namespace".into()),
        source_id: Set(group.id),
        user_id: Set(user.id),
        access_level: Set(30),
        expires_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(c)
    .await
    .expect("member");
    let pat = |digest: &str| pats::ActiveModel {
        user_id: Set(user.id),
        name: Set("ci".into()),
        token_digest: Set(digest.into()),
        scopes: Set("read_registry,write_registry".into()),
        expires_at: Set(None),
        revoked: Set(false),
        last_used_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    };
    pat("a".repeat(64).as_str()).insert(c).await.expect("pat");
    let dup = pat("a".repeat(64).as_str()).insert(c).await.unwrap_err();
    assert!(berth_db::is_unique_violation(&dup), "{dup}");
    users::Entity::delete_by_id(user.id)
        .exec(c)
        .await
        .expect("delete user");
    assert_eq!(pats::Entity::find().count(&conn.read).await.unwrap(), 0);
    assert_eq!(members::Entity::find().count(&conn.read).await.unwrap(), 0);
    assert_eq!(projects::Entity::find().count(&conn.read).await.unwrap(), 1);
}
