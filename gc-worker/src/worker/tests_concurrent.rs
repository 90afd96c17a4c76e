//! Many blob workers in one process on one queue (SQLite and PostgreSQL): every due row is
//! reviewed exactly once (a row taken twice would show as a second, `Noop`, review), and
//! rows and bytes are all gone afterwards.

use std::sync::Arc;
use std::time::Duration;

use berth_blobstore::BlobStore;
use berth_core::Digest;
use berth_db::entity::{blobs, gc_blob_review_queue as blob_q};
use berth_test_support::{Backend, TestDb};
use sea_orm::{EntityTrait, PaginatorTrait, Set};

use super::{Outcome, Settings, blob};

const ROWS: usize = 300;
const WORKERS: usize = 8;

async fn every_row_reviewed_once(backend: Backend) {
    let Some(test_db) = TestDb::new(backend).await else {
        return;
    };
    let db = berth_db::connect(&test_db.url).await.unwrap();
    berth_db::migrate(&db).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(
        berth_blobstore::FsBlobStore::open(dir.path())
            .await
            .unwrap(),
    );
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    let mut queue = Vec::new();
    for i in 0..ROWS {
        let bytes = format!("blob {i}").into_bytes();
        let d = Digest::sha256(&bytes);
        store.put_blob(&d, bytes.clone().into()).await.unwrap();
        rows.push(blobs::ActiveModel {
            digest: Set(d.to_string()),
            size: Set(bytes.len() as i64),
            created_at: Set(now),
        });
        queue.push(blob_q::ActiveModel {
            digest: Set(d.to_string()),
            review_after: Set(now - chrono::Duration::seconds(1)),
            review_count: Set(0),
            event: Set("blob_upload".into()),
            created_at: Set(now),
        });
    }
    blobs::Entity::insert_many(rows)
        .exec_without_returning(&db.write)
        .await
        .unwrap();
    blob_q::Entity::insert_many(queue)
        .exec_without_returning(&db.write)
        .await
        .unwrap();
    let settings = Settings {
        review_delay: Duration::ZERO,
        storage_timeout: Duration::from_secs(5),
    };
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (db, store, settings) = (db.clone(), store.clone(), settings.clone());
        tasks.push(tokio::spawn(async move {
            let (mut dangling, mut other) = (0usize, 0usize);
            loop {
                match blob::run_once(&db, &store, &settings, chrono::Utc::now()).await {
                    Ok(Outcome::Empty) => break,
                    Ok(Outcome::Dangling) => dangling += 1,
                    Ok(Outcome::Noop) => other += 1,
                    Err(e) => panic!("review failed: {e:#}"),
                }
            }
            (dangling, other)
        }));
    }
    let (mut dangling, mut other) = (0, 0);
    for t in tasks {
        let (d, o) = t.await.unwrap();
        dangling += d;
        other += o;
    }
    assert_eq!((dangling, other), (ROWS, 0), "{backend:?}");
    assert_eq!(blobs::Entity::find().count(&db.read).await.unwrap(), 0);
    assert_eq!(blob_q::Entity::find().count(&db.read).await.unwrap(), 0);
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_row_reviewed_once_sqlite() {
    every_row_reviewed_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_row_reviewed_once_postgres() {
    every_row_reviewed_once(Backend::Postgres).await;
}
