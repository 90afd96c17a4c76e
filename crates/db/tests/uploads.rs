//! Upload session counts behind the registry's caps, on SQLite and PostgreSQL: per
//! repository and per user, only sessions touched within the window.

use berth_db::{Db, repositories, uploads};
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};

async fn migrated(db: &TestDb) -> Db {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    conn
}

db_test!(recent_sessions_are_counted_per_repository_and_per_user);
async fn recent_sessions_are_counted_per_repository_and_per_user(db: TestDb) {
    let conn = migrated(&db).await;
    let now = Utc::now();
    let old = now - Duration::days(2);
    let a = repositories::get_or_create(&conn.write, "acme/a", now)
        .await
        .unwrap()
        .id;
    let b = repositories::get_or_create(&conn.write, "acme/b", now)
        .await
        .unwrap()
        .id;
    let sessions = [
        (a, Some("alice"), now),
        (a, Some("alice"), now),
        (a, Some("bob"), now),
        (b, Some("alice"), now),
        (b, None, now),
        // Abandoned two days ago: outside a one-day window.
        (a, Some("alice"), old),
        (b, Some("bob"), old),
    ];
    for (repo, user, at) in sessions {
        let id = uuid::Uuid::new_v4().to_string();
        uploads::create(&conn.write, &id, repo, user, at)
            .await
            .unwrap();
    }
    let since = now - Duration::days(1);
    let per_repo = |repo| uploads::count_recent_in_repository(&conn.read, repo, since);
    assert_eq!(per_repo(a).await.unwrap(), 3);
    assert_eq!(per_repo(b).await.unwrap(), 2);
    let per_user = |user| uploads::count_recent_by_user(&conn.read, user, since);
    assert_eq!(per_user("alice").await.unwrap(), 3);
    assert_eq!(per_user("bob").await.unwrap(), 1);
    assert_eq!(per_user("carol").await.unwrap(), 0);
    // A wider window counts the abandoned ones too.
    let all = now - Duration::days(3);
    assert_eq!(
        uploads::count_recent_in_repository(&conn.read, a, all)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        uploads::count_recent_by_user(&conn.read, "bob", all)
            .await
            .unwrap(),
        2
    );
}
