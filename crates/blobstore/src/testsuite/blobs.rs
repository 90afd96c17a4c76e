//! Conformance cases about committed blobs: stat, open with ranges, delete, list.

use berth_core::Digest;

use super::{get, put, random_content, read_body};
use crate::{BlobStore, StoreError};

/// `stat` of a digest nobody stored is `None`.
pub async fn stat_absent_is_none(store: &dyn BlobStore) {
    let digest = Digest::sha256(&random_content(32));
    assert_eq!(store.stat(&digest).await.expect("stat"), None);
}

/// `open` of a digest nobody stored is `NotFound`, with or without a range.
pub async fn open_absent_is_not_found(store: &dyn BlobStore) {
    let digest = Digest::sha256(&random_content(32));
    assert!(matches!(
        store.open(&digest, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.open(&digest, Some((0, 0))).await,
        Err(StoreError::NotFound)
    ));
}

/// Ranges: first byte, middle, last byte, clamped end, and the unsatisfiable ones.
pub async fn range_reads(store: &dyn BlobStore) {
    let data = random_content(1000);
    let digest = put(store, &data, 333).await;
    let cases: [((u64, u64), &[u8]); 5] = [
        ((0, 0), &data[..1]),
        ((100, 199), &data[100..200]),
        ((999, 999), &data[999..]),
        ((990, 5000), &data[990..]),
        ((0, u64::MAX), &data[..]),
    ];
    for (range, want) in cases {
        let body = store.open(&digest, Some(range)).await.expect("open range");
        assert_eq!(body.len(), want.len() as u64, "len of range {range:?}");
        if let crate::BlobBody::File { offset, .. } = &body {
            assert_eq!(*offset, range.0, "offset of range {range:?}");
        }
        assert_eq!(read_body(body).await, want, "bytes of range {range:?}");
    }
    for range in [(1000, 1000), (1000, 2000), (5000, 6000), (5, 4)] {
        assert!(
            matches!(
                store.open(&digest, Some(range)).await,
                Err(StoreError::RangeNotSatisfiable)
            ),
            "range {range:?} should be unsatisfiable"
        );
    }
}

/// Deleting a blob removes it; deleting again, or deleting an absent one, is fine.
pub async fn delete_is_idempotent(store: &dyn BlobStore) {
    let data = random_content(4096);
    let digest = put(store, &data, 1000).await;
    assert_eq!(get(store, &digest).await, data);
    store.delete(&digest).await.expect("delete");
    assert_eq!(store.stat(&digest).await.expect("stat"), None);
    assert!(matches!(
        store.open(&digest, None).await,
        Err(StoreError::NotFound)
    ));
    store.delete(&digest).await.expect("delete again");
    store
        .delete(&Digest::sha256(&random_content(8)))
        .await
        .expect("delete absent");
    assert!(!store.list().await.expect("list").contains(&digest));
}

/// `list` includes every committed digest.
pub async fn list_returns_committed(store: &dyn BlobStore) {
    let a = put(store, &random_content(10), 10).await;
    let b = put(store, &random_content(20), 7).await;
    let listed = store.list().await.expect("list");
    assert!(listed.contains(&a), "{a} missing from list");
    assert!(listed.contains(&b), "{b} missing from list");
}

/// `modified` is `None` for an absent blob and a recent time for a blob just committed.
pub async fn modified_of_committed(store: &dyn BlobStore) {
    let absent = Digest::sha256(&random_content(32));
    assert_eq!(store.modified(&absent).await.expect("modified"), None);
    let digest = put(store, &random_content(100), 100).await;
    let at = store
        .modified(&digest)
        .await
        .expect("modified")
        .expect("present");
    let age = std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or_default();
    assert!(age < std::time::Duration::from_secs(600), "age {age:?}");
}
