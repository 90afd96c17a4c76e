//! Conformance cases about uploads: appending, failures, committing, ids, staleness.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use berth_core::Digest;
use bytes::Bytes;

use super::{chunked, collect, get, new_id, put, random_content};
use crate::{BlobStore, ByteStream, StoreError};

/// Two appends of different chunkings, a commit, then the blob reads back intact and the
/// upload is gone. Repeated for several chunk sizes.
pub async fn roundtrip_chunk_sizes(store: &dyn BlobStore) {
    for chunk in [1, 7, 4096, 65_536, (1 << 20) + 3] {
        let data = random_content(if chunk == 1 {
            3000
        } else {
            300_000 + chunk * 2
        });
        let split = data.len() / 3;
        let id = new_id();
        store.create_upload(&id).await.expect("create");
        assert_eq!(store.upload_size(&id).await.expect("size"), 0);
        let first = store
            .append_upload(&id, 0, chunked(&data[..split], chunk))
            .await
            .expect("append 1");
        assert_eq!(first, split as u64);
        assert_eq!(store.upload_size(&id).await.expect("size"), split as u64);
        let total = store
            .append_upload(&id, first, chunked(&data[split..], chunk))
            .await
            .expect("append 2");
        assert_eq!(total, data.len() as u64);
        let digest = Digest::sha256(&data);
        store.commit_upload(&id, &digest).await.expect("commit");
        assert_eq!(
            store.stat(&digest).await.expect("stat"),
            Some(data.len() as u64)
        );
        assert_eq!(get(store, &digest).await, data, "chunk size {chunk}");
        assert!(matches!(
            store.upload_size(&id).await,
            Err(StoreError::UploadNotFound)
        ));
    }
}

/// An upload with no bytes commits to an empty blob; ranges on it are unsatisfiable.
pub async fn zero_byte_blob(store: &dyn BlobStore) {
    let id = new_id();
    store.create_upload(&id).await.expect("create");
    let empty: ByteStream = Box::pin(futures_util::stream::empty());
    assert_eq!(
        store
            .append_upload(&id, 0, empty)
            .await
            .expect("empty append"),
        0
    );
    let digest = Digest::sha256(b"");
    store.commit_upload(&id, &digest).await.expect("commit");
    assert_eq!(store.stat(&digest).await.expect("stat"), Some(0));
    assert!(get(store, &digest).await.is_empty());
    assert!(matches!(
        store.open(&digest, Some((0, 0))).await,
        Err(StoreError::RangeNotSatisfiable)
    ));
}

/// 5 MiB streamed in 64 KiB chunks.
pub async fn large_blob_streamed(store: &dyn BlobStore) {
    let data = random_content(5 << 20);
    let digest = put(store, &data, 64 << 10).await;
    assert_eq!(
        store.stat(&digest).await.expect("stat"),
        Some(data.len() as u64)
    );
    assert!(get(store, &digest).await == data, "5 MiB blob differs");
}

/// An append at the wrong offset fails with both offsets and writes nothing.
pub async fn offset_mismatch_changes_nothing(store: &dyn BlobStore) {
    let data = random_content(10);
    let id = new_id();
    store.create_upload(&id).await.expect("create");
    store
        .append_upload(&id, 0, chunked(&data, 4))
        .await
        .expect("append");
    for wrong in [0, 5, 11, u64::MAX] {
        let err = store.append_upload(&id, wrong, chunked(b"xyz", 3)).await;
        assert!(
            matches!(err, Err(StoreError::OffsetMismatch { expected: 10, got }) if got == wrong),
            "offset {wrong}: {err:?}"
        );
    }
    assert_eq!(store.upload_size(&id).await.expect("size"), 10);
    assert_eq!(
        collect(store.read_upload(&id).await.expect("read")).await,
        data
    );
    store.delete_upload(&id).await.expect("delete upload");
}

/// A body that fails midway (after enough bytes to have hit the disk) leaves the upload as
/// it was, and the upload can be resumed at the old offset.
pub async fn failing_stream_changes_nothing(store: &dyn BlobStore) {
    let data = random_content(100);
    let id = new_id();
    store.create_upload(&id).await.expect("create");
    store
        .append_upload(&id, 0, chunked(&data, 100))
        .await
        .expect("append");
    let items: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from(random_content(50))),
        Ok(Bytes::from(random_content(3 << 20))),
        Ok(Bytes::from(random_content(70_000))),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
        Ok(Bytes::from_static(b"never read")),
    ];
    let failing: ByteStream = Box::pin(futures_util::stream::iter(items));
    let err = store.append_upload(&id, 100, failing).await;
    assert!(matches!(err, Err(StoreError::Io(_))), "{err:?}");
    assert_eq!(store.upload_size(&id).await.expect("size"), 100);
    assert_eq!(
        collect(store.read_upload(&id).await.expect("read")).await,
        data
    );
    let more = random_content(30);
    assert_eq!(
        store
            .append_upload(&id, 100, chunked(&more, 30))
            .await
            .expect("resume"),
        130
    );
    let whole = [data, more].concat();
    assert_eq!(
        collect(store.read_upload(&id).await.expect("read")).await,
        whole
    );
    store.delete_upload(&id).await.expect("delete upload");
}

/// Committing content that is already a blob succeeds, removes the upload and keeps the blob.
pub async fn commit_existing_dedupes(store: &dyn BlobStore) {
    let data = random_content(2000);
    let digest = put(store, &data, 512).await;
    let id = new_id();
    store.create_upload(&id).await.expect("create");
    store
        .append_upload(&id, 0, chunked(&data, 300))
        .await
        .expect("append");
    store
        .commit_upload(&id, &digest)
        .await
        .expect("commit duplicate");
    assert!(matches!(
        store.upload_size(&id).await,
        Err(StoreError::UploadNotFound)
    ));
    assert_eq!(get(store, &digest).await, data);
    assert!(
        !store
            .stale_uploads(Duration::ZERO)
            .await
            .expect("stale")
            .contains(&id)
    );
}

/// Ids that could escape the upload directory (or are just not UUIDs) are refused by every
/// upload operation, including the idempotent delete.
pub async fn invalid_ids_rejected(store: &dyn BlobStore) {
    let digest = Digest::sha256(b"x");
    let uuid_like_traversal = "../00000000-0000-0000-0000-0000000000";
    for id in [
        "../x",
        "",
        "a/b",
        "..",
        ".",
        "/etc/passwd",
        "not-a-uuid",
        uuid_like_traversal,
    ] {
        let invalid = |r: Result<(), StoreError>, op: &str| {
            assert!(
                matches!(r, Err(StoreError::InvalidUploadId)),
                "{op}({id:?}): {r:?}"
            );
        };
        invalid(store.create_upload(id).await, "create_upload");
        invalid(
            store.append_upload(id, 0, chunked(b"x", 1)).await.map(drop),
            "append_upload",
        );
        invalid(store.upload_size(id).await.map(drop), "upload_size");
        invalid(store.read_upload(id).await.map(drop), "read_upload");
        invalid(store.commit_upload(id, &digest).await, "commit_upload");
        invalid(store.delete_upload(id).await, "delete_upload");
    }
}

/// Several uploads of the same content committing to the same digest at once all succeed and
/// leave one intact blob.
pub async fn concurrent_same_content(store: Arc<dyn BlobStore>) {
    let data = Arc::new(random_content((1 << 20) + 12_345));
    let digest = Digest::sha256(&data);
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (store, data, digest) = (store.clone(), data.clone(), digest.clone());
            tokio::spawn(async move {
                let id = new_id();
                store.create_upload(&id).await.expect("create");
                store
                    .append_upload(&id, 0, chunked(&data, 10_000 + i * 7_000))
                    .await
                    .expect("append");
                store.commit_upload(&id, &digest).await.expect("commit");
                assert!(matches!(
                    store.upload_size(&id).await,
                    Err(StoreError::UploadNotFound)
                ));
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("upload task");
    }
    assert_eq!(
        store.stat(&digest).await.expect("stat"),
        Some(data.len() as u64)
    );
    assert!(
        get(store.as_ref(), &digest).await == *data,
        "concurrently committed blob differs"
    );
}

/// `read_upload` returns exactly the bytes appended so far.
pub async fn read_upload_returns_bytes(store: &dyn BlobStore) {
    let id = new_id();
    store.create_upload(&id).await.expect("create");
    assert!(
        collect(store.read_upload(&id).await.expect("read empty"))
            .await
            .is_empty()
    );
    let data = random_content(700_000);
    store
        .append_upload(&id, 0, chunked(&data, 50_000))
        .await
        .expect("append");
    assert!(
        collect(store.read_upload(&id).await.expect("read")).await == data,
        "read_upload differs"
    );
    store.delete_upload(&id).await.expect("delete upload");
    assert!(matches!(
        store.upload_size(&id).await,
        Err(StoreError::UploadNotFound)
    ));
    store.delete_upload(&id).await.expect("delete upload again");
}

/// Every upload operation on an id that was never created reports `UploadNotFound`, but
/// for an append at offset 0, which creates it.
pub async fn missing_upload_errors(store: &dyn BlobStore) {
    let id = new_id();
    let digest = Digest::sha256(b"missing");
    assert!(matches!(
        store.upload_size(&id).await,
        Err(StoreError::UploadNotFound)
    ));
    assert!(matches!(
        store.read_upload(&id).await.map(drop),
        Err(StoreError::UploadNotFound)
    ));
    assert!(matches!(
        store.append_upload(&id, 3, chunked(b"a", 1)).await,
        Err(StoreError::UploadNotFound)
    ));
    assert!(matches!(
        store.commit_upload(&id, &digest).await,
        Err(StoreError::UploadNotFound)
    ));
    let lazy = new_id();
    assert_eq!(
        store
            .append_upload(&lazy, 0, chunked(b"abc", 2))
            .await
            .expect("lazy create"),
        3
    );
    assert_eq!(store.upload_size(&lazy).await.expect("size"), 3);
    store.delete_upload(&lazy).await.expect("delete");
    assert_eq!(store.stat(&digest).await.expect("stat"), None);
    store
        .delete_upload(&id)
        .await
        .expect("delete absent upload");
}

/// `stale_uploads` reports an upload once it is old enough, and not before.
pub async fn stale_uploads_by_age(store: &dyn BlobStore) {
    let id = new_id();
    store.create_upload(&id).await.expect("create");
    store
        .append_upload(&id, 0, chunked(b"abc", 1))
        .await
        .expect("append");
    // Let the clock move past the modification time even on coarse timestamps.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        store
            .stale_uploads(Duration::ZERO)
            .await
            .expect("stale")
            .contains(&id)
    );
    assert!(
        !store
            .stale_uploads(Duration::from_secs(3600))
            .await
            .expect("stale")
            .contains(&id)
    );
    store.delete_upload(&id).await.expect("delete upload");
    assert!(
        !store
            .stale_uploads(Duration::ZERO)
            .await
            .expect("stale")
            .contains(&id)
    );
}

/// `put_blob` stores in-memory bytes atomically, dedupes, and leaves no upload behind.
pub async fn put_blob_round_trip(store: &dyn BlobStore) {
    let uploads_before = store
        .stale_uploads(Duration::ZERO)
        .await
        .expect("stale")
        .len();
    let data = random_content(70_000);
    let digest = Digest::sha256(&data);
    store
        .put_blob(&digest, Bytes::from(data.clone()))
        .await
        .expect("put");
    assert_eq!(get(store, &digest).await, data);
    store
        .put_blob(&digest, Bytes::from(data.clone()))
        .await
        .expect("put again");
    let empty = Digest::sha256(b"");
    store.put_blob(&empty, Bytes::new()).await.expect("empty");
    assert_eq!(store.stat(&empty).await.expect("stat"), Some(0));
    let uploads_after = store
        .stale_uploads(Duration::ZERO)
        .await
        .expect("stale")
        .len();
    assert_eq!(
        uploads_after, uploads_before,
        "put_blob left uploads behind"
    );
}
