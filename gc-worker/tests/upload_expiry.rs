//! Abandoned upload sessions, on SQLite and PostgreSQL: 2,000 open sessions count towards
//! usage while open, and the expiry pass ends every one untouched for longer than the
//! expiry (rows and bytes), leaving a session touched since alone.

use std::time::Duration;

use berth_db::usage;
use berth_gc::worker::{Outcome, uploads};
use berth_test_support::fixtures::usage::{group, project, repo};
use berth_test_support::{TestDb, db_test};
use chrono::Utc;

db_test!(abandoned_uploads_count_and_expire);
async fn abandoned_uploads_count_and_expire(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = berth_blobstore::open_store(&format!("file://{}", dir.path().display()))
        .await
        .expect("store");
    let c = &conn.write;
    let acme = group(c, None, "acme").await;
    project(c, &acme, "web").await;
    let web = repo(c, "acme/web").await;
    let long_ago = Utc::now() - chrono::Duration::hours(30);
    for i in 0..2000 {
        let id = format!("{i:08x}-0000-4000-8000-000000000000");
        berth_db::uploads::create(c, &id, web, None, long_ago)
            .await
            .expect("session");
        berth_db::uploads::set_size(c, &id, 10, long_ago)
            .await
            .expect("size");
        store.create_upload(&id).await.expect("file");
    }
    // One session a client touched just now stays.
    let live = "ffffffff-0000-4000-8000-000000000000";
    berth_db::uploads::create(c, live, web, None, Utc::now())
        .await
        .expect("session");
    berth_db::uploads::set_size(c, live, 7, Utc::now())
        .await
        .expect("size");
    assert_eq!(
        usage::repository_usage(c, web).await.expect("usage"),
        20_007
    );
    assert_eq!(
        usage::project_usage(c, "acme/web").await.expect("usage"),
        20_007
    );

    let expiry = Duration::from_secs(24 * 3600);
    let mut passes = 0;
    while uploads::run_once(&conn, store.as_ref(), expiry, Utc::now())
        .await
        .expect("expiry pass")
        != Outcome::Empty
    {
        passes += 1;
        assert!(passes < 20, "expiry does not converge");
    }
    assert_eq!(usage::repository_usage(c, web).await.expect("usage"), 7);
    let left = berth_db::consistency::stale_uploads(&conn.read, Utc::now(), "", 10_000)
        .await
        .expect("rows");
    assert_eq!(left.len(), 1, "only the live session remains");
    assert_eq!(left[0].id, live);
    // The expired sessions' files are gone (the store lists none older than the expiry's
    // cutoff since there are none left at all but files of live sessions).
    assert!(
        store
            .upload_size("00000000-0000-4000-8000-000000000000")
            .await
            .is_err()
    );
}
