//! Conformance tests every [`BlobStore`] backend must pass (feature `testsuite`).
//!
//! Each case is a `pub async fn` taking the store, so a backend's tests can run them all with
//! [`run_all`] or pick some. Cases use fresh random content and ids, so they may share one
//! store and run against a store that already holds data. They panic on failure, like any
//! test assertion.

mod blobs;
mod uploads;

use std::io;
use std::sync::Arc;

use berth_core::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::{BlobBody, BlobStore, ByteStream};

pub use blobs::{
    delete_is_idempotent, list_returns_committed, modified_of_committed, open_absent_is_not_found,
    range_reads, stat_absent_is_none,
};
pub use uploads::{
    commit_existing_dedupes, concurrent_same_content, failing_stream_changes_nothing,
    invalid_ids_rejected, large_blob_streamed, missing_upload_errors,
    offset_mismatch_changes_nothing, put_blob_round_trip, read_upload_returns_bytes,
    roundtrip_chunk_sizes, stale_uploads_by_age, zero_byte_blob,
};

/// Run every case against `store`.
pub async fn run_all(store: Arc<dyn BlobStore>) {
    let s = store.as_ref();
    stat_absent_is_none(s).await;
    open_absent_is_not_found(s).await;
    roundtrip_chunk_sizes(s).await;
    zero_byte_blob(s).await;
    large_blob_streamed(s).await;
    range_reads(s).await;
    offset_mismatch_changes_nothing(s).await;
    failing_stream_changes_nothing(s).await;
    commit_existing_dedupes(s).await;
    delete_is_idempotent(s).await;
    invalid_ids_rejected(s).await;
    concurrent_same_content(store.clone()).await;
    list_returns_committed(s).await;
    modified_of_committed(s).await;
    read_upload_returns_bytes(s).await;
    missing_upload_errors(s).await;
    put_blob_round_trip(s).await;
    stale_uploads_by_age(s).await;
}

/// A fresh upload id in the form the registry makes them.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `len` bytes that differ from every other call's, so digests never collide by accident.
pub fn random_content(len: usize) -> Vec<u8> {
    let seed = uuid::Uuid::new_v4();
    let seed = seed.as_bytes();
    // A cheap position-dependent pattern; the seed makes it unique per call.
    (0..len)
        .map(|i| seed[i % 16] ^ (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8))
        .collect()
}

/// `data` as a stream of `chunk`-sized pieces (`chunk` > 0).
pub fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(pieces))
}

/// Collect a stream into memory.
pub async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("stream chunk"));
    }
    out
}

/// Read exactly what a [`BlobBody`] says it carries, checking it carries that much.
pub async fn read_body(body: BlobBody) -> Vec<u8> {
    match body {
        BlobBody::File { file, len, .. } => {
            let mut out = Vec::new();
            file.take(len)
                .read_to_end(&mut out)
                .await
                .expect("read blob file");
            assert_eq!(out.len() as u64, len, "file body shorter than its len");
            out
        }
        BlobBody::Stream { stream, len } => {
            let out = collect(stream).await;
            assert_eq!(
                out.len() as u64,
                len,
                "stream body length differs from its len"
            );
            out
        }
    }
}

/// Upload `data` in one append of `chunk`-sized pieces and commit it; returns its digest.
pub async fn put(store: &dyn BlobStore, data: &[u8], chunk: usize) -> Digest {
    let id = new_id();
    let digest = Digest::sha256(data);
    store.create_upload(&id).await.expect("create upload");
    let size = store
        .append_upload(&id, 0, chunked(data, chunk))
        .await
        .expect("append");
    assert_eq!(size, data.len() as u64);
    store.commit_upload(&id, &digest).await.expect("commit");
    digest
}

/// Read a whole committed blob.
pub async fn get(store: &dyn BlobStore, digest: &Digest) -> Vec<u8> {
    read_body(store.open(digest, None).await.expect("open blob")).await
}
