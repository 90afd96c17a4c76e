//! Tests of [`FsBlobStore`]: the conformance suite plus filesystem-specific guarantees.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_core::Digest;
use bytes::Bytes;
use sha2::Digest as _;
use tokio::sync::mpsc;

use super::*;
use crate::testsuite::{self, chunked, collect, new_id, random_content};

async fn store() -> (tempfile::TempDir, FsBlobStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::open(dir.path().join("root"))
        .await
        .expect("open store");
    (dir, store)
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A body fed through a channel, so a test can hold an append open.
fn channel_body() -> (mpsc::Sender<std::io::Result<Bytes>>, ByteStream) {
    let (tx, rx) = mpsc::channel(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Box::pin(stream))
}

async fn wait_for_size(store: &FsBlobStore, id: &str, want: impl Fn(u64) -> bool) -> u64 {
    for _ in 0..500 {
        let size = store.upload_size(id).await.expect("size");
        if want(size) {
            return size;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("upload size never reached the expected value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let (_dir, store) = store().await;
    testsuite::run_all(Arc::new(store)).await;
}

#[tokio::test]
async fn layout_and_digest_agree() {
    let (_dir, store) = store().await;
    let data = random_content(123_456);
    let digest = testsuite::put(&store, &data, 10_000).await;
    let hex = hex::encode(sha2::Sha256::digest(&data));
    assert_eq!(digest.hex(), hex);
    let path = store.root().join("blobs/sha256").join(&hex[..2]).join(&hex);
    assert_eq!(std::fs::read(&path).expect("blob file"), data);
    assert!(files_under(&store.root().join("uploads")).is_empty());
    assert_eq!(store.list().await.expect("list"), vec![digest]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_content_is_never_visible() {
    let (_dir, store) = store().await;
    let blobs = store.root().join("blobs");
    let data = random_content(3 << 20);
    let digest = Digest::sha256(&data);
    let id = new_id();
    store.create_upload(&id).await.expect("create");
    let store = Arc::new(store);
    let (tx, body) = channel_body();
    let append = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.append_upload(&id, 0, body).await })
    };
    for piece in data.chunks(1 << 20) {
        tx.send(Ok(Bytes::copy_from_slice(piece)))
            .await
            .expect("send");
        assert!(files_under(&blobs).is_empty(), "blob visible during append");
    }
    drop(tx);
    assert_eq!(
        append.await.expect("task").expect("append"),
        data.len() as u64
    );
    assert!(files_under(&blobs).is_empty(), "blob visible before commit");
    assert_eq!(store.stat(&digest).await.expect("stat"), None);
    store.commit_upload(&id, &digest).await.expect("commit");
    assert_eq!(files_under(&blobs).len(), 1);
    assert_eq!(testsuite::get(store.as_ref(), &digest).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_append_is_rolled_back() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    let id = new_id();
    let first = random_content(1000);
    store.create_upload(&id).await.expect("create");
    store
        .append_upload(&id, 0, chunked(&first, 1000))
        .await
        .expect("append");
    let (tx, body) = channel_body();
    let append = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.append_upload(&id, 1000, body).await })
    };
    // Big enough to be written straight away, so there is something to roll back.
    tx.send(Ok(Bytes::from(random_content(2 << 20))))
        .await
        .expect("send");
    wait_for_size(&store, &id, |s| s > 1000).await;
    // Dropping the request future mid-body, as a server does when the client disconnects.
    append.abort();
    assert!(append.await.is_err_and(|e| e.is_cancelled()));
    wait_for_size(&store, &id, |s| s == 1000).await;
    // The next append waits for the clean-up and then resumes at the old offset.
    let more = random_content(10);
    assert_eq!(
        store
            .append_upload(&id, 1000, chunked(&more, 3))
            .await
            .expect("resume"),
        1010
    );
    let got = collect(store.read_upload(&id).await.expect("read")).await;
    assert_eq!(got, [first, more].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_waits_for_a_running_append() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    let id = new_id();
    let data = random_content(200_000);
    let digest = Digest::sha256(&data);
    store.create_upload(&id).await.expect("create");
    let (tx, body) = channel_body();
    let append = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.append_upload(&id, 0, body).await })
    };
    tx.send(Ok(Bytes::copy_from_slice(&data[..1000])))
        .await
        .expect("send");
    // Only once the append has taken the chunk does it hold the upload's lock; before that
    // a commit may legitimately run first.
    while tx.capacity() < tx.max_capacity() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let commit = {
        let (store, id, digest) = (store.clone(), id.clone(), digest.clone());
        tokio::spawn(async move { store.commit_upload(&id, &digest).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !commit.is_finished(),
        "commit ran while an append was in progress"
    );
    tx.send(Ok(Bytes::copy_from_slice(&data[1000..])))
        .await
        .expect("send");
    drop(tx);
    assert_eq!(
        append.await.expect("task").expect("append"),
        data.len() as u64
    );
    commit.await.expect("task").expect("commit");
    assert_eq!(testsuite::get(store.as_ref(), &digest).await, data);
}

#[tokio::test]
async fn damaged_blob_is_replaced_on_commit() {
    let (_dir, store) = store().await;
    let data = random_content(5000);
    let digest = testsuite::put(&store, &data, 5000).await;
    let path = store.blob_path(&digest);
    std::fs::write(&path, b"truncated").expect("damage blob");
    testsuite::put(&store, &data, 999).await;
    assert_eq!(std::fs::read(&path).expect("blob"), data);
}

#[tokio::test]
async fn stray_files_are_left_out_of_list() {
    let (_dir, store) = store().await;
    let digest = testsuite::put(&store, b"hello", 5).await;
    let root = store.root().join("blobs");
    std::fs::write(root.join("sha256/README"), b"x").expect("stray");
    std::fs::create_dir_all(root.join("sha256/zz")).expect("dir");
    std::fs::write(root.join("sha256/zz").join(digest.hex()), b"x").expect("misplaced");
    std::fs::create_dir_all(root.join("md5/ab")).expect("dir");
    std::fs::write(root.join("md5/ab/abcd"), b"x").expect("unknown alg");
    assert_eq!(store.list().await.expect("list"), vec![digest]);
}

#[test]
fn upload_ids_must_be_canonical_uuids() {
    assert!(valid_upload_id(&uuid::Uuid::new_v4().to_string()));
    assert!(valid_upload_id("00000000-0000-0000-0000-000000000000"));
    for bad in [
        "",
        "..",
        "../x",
        "a/b",
        "00000000-0000-0000-0000-00000000000G",
        "AAAAAAAA-0000-0000-0000-000000000000",
        "00000000000000000000000000000000",
        "00000000-0000-0000-0000-000000000000/",
        "------------------------------------",
    ] {
        assert!(!valid_upload_id(bad), "{bad:?}");
    }
}

#[test]
fn ranges_resolve() {
    assert_eq!(resolve_range(None, 10).expect("full"), (0, 10));
    assert_eq!(resolve_range(None, 0).expect("empty"), (0, 0));
    assert_eq!(resolve_range(Some((0, 0)), 10).expect("first"), (0, 1));
    assert_eq!(resolve_range(Some((3, 100)), 10).expect("clamped"), (3, 7));
    assert!(matches!(
        resolve_range(Some((10, 10)), 10),
        Err(StoreError::RangeNotSatisfiable)
    ));
    assert!(matches!(
        resolve_range(Some((0, 0)), 0),
        Err(StoreError::RangeNotSatisfiable)
    ));
    assert!(matches!(
        resolve_range(Some((4, 3)), 10),
        Err(StoreError::RangeNotSatisfiable)
    ));
}
