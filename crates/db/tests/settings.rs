//! The GC review delay's one source of truth on SQLite and PostgreSQL: the registry and
//! berth-auth seed it only into a database without one (the first wins), berth-gc's record
//! overwrites it, and every follower's cache picks the recorded value up within its refresh.

use std::time::Duration;

use berth_db::settings::{ReviewDelay, record_review_delay, review_delay};
use berth_test_support::{TestDb, db_test};

const REFRESH: Duration = Duration::from_millis(50);

/// Wait (bounded) until `cache` shows `want`.
async fn follows(cache: &ReviewDelay, want: Duration) -> bool {
    for _ in 0..100 {
        if cache.get() == want {
            return true;
        }
        tokio::time::sleep(REFRESH).await;
    }
    false
}

db_test!(review_delay_has_one_source_of_truth);
async fn review_delay_has_one_source_of_truth(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    assert_eq!(review_delay(&conn.read).await.unwrap(), None);

    // The first process to start (say the registry) seeds its configured delay...
    let registry = ReviewDelay::follow(&conn, Duration::from_secs(2), REFRESH)
        .await
        .unwrap();
    assert_eq!(registry.get(), Duration::from_secs(2));
    // ...and a second one configured differently follows the recorded value, not its own.
    let auth = ReviewDelay::follow(&conn, Duration::from_secs(9), REFRESH)
        .await
        .unwrap();
    assert_eq!(auth.get(), Duration::from_secs(2));
    assert_eq!(
        review_delay(&conn.read).await.unwrap(),
        Some(Duration::from_secs(2))
    );

    // berth-gc, the owner, records its delay; both followers pick it up.
    record_review_delay(&conn.write, Duration::from_millis(1500), true)
        .await
        .unwrap();
    assert!(follows(&registry, Duration::from_millis(1500)).await);
    assert!(follows(&auth, Duration::from_millis(1500)).await);

    // A follower starting later only seeds, so it cannot undo berth-gc's value.
    record_review_delay(&conn.write, Duration::from_secs(24 * 3600), false)
        .await
        .unwrap();
    let late = ReviewDelay::follow(&conn, Duration::from_secs(24 * 3600), REFRESH)
        .await
        .unwrap();
    assert_eq!(late.get(), Duration::from_millis(1500));
    assert_eq!(
        review_delay(&conn.read).await.unwrap(),
        Some(Duration::from_millis(1500))
    );
}
