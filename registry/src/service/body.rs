//! Request bodies as byte streams for the blob store: hashed while they stream, and held to
//! the length the client declared.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use berth_blobstore::ByteStream;
use berth_core::DigestHasher;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// Marks the stream error raised when a body is longer or shorter than declared.
#[derive(Debug)]
struct SizeMismatch {
    expected: u64,
    got: u64,
}

impl std::fmt::Display for SizeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "body length {} does not match the declared length {}",
            self.got, self.expected
        )
    }
}

impl std::error::Error for SizeMismatch {}

/// Marks the stream error raised when the client's body could not be read: the client
/// disconnected, or paused longer than the body timeout. The client's doing, not a fault of
/// the registry.
#[derive(Debug)]
struct BodyUnreadable(axum::Error);

impl std::fmt::Display for BodyUnreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body could not be read: {}", self.0)
    }
}

impl std::error::Error for BodyUnreadable {}

/// If `e` came from reading the client's body, its message.
pub fn body_unreadable(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<BodyUnreadable>())
        .map(ToString::to_string)
}

/// If `e` came from a length check, its message.
pub fn size_mismatch(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<SizeMismatch>())
        .map(ToString::to_string)
}

/// A hasher shared between the stream (which feeds it) and the caller (which takes it back
/// when the store is done). The lock is never contended: one stream, polled by one task.
pub type SharedHasher = Arc<Mutex<Option<DigestHasher>>>;

struct Metered {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, axum::Error>> + Send>>,
    hasher: SharedHasher,
    seen: u64,
    expected: Option<u64>,
    done: bool,
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if let Some(expected) = self.expected.filter(|e| self.seen > *e) {
                    self.done = true;
                    return Poll::Ready(Some(Err(mismatch(expected, self.seen))));
                }
                if let Ok(mut h) = self.hasher.lock()
                    && let Some(h) = h.as_mut()
                {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(BodyUnreadable(e)))))
            }
            Poll::Ready(None) => {
                self.done = true;
                match self.expected {
                    Some(expected) if expected != self.seen => {
                        Poll::Ready(Some(Err(mismatch(expected, self.seen))))
                    }
                    _ => Poll::Ready(None),
                }
            }
        }
    }
}

fn mismatch(expected: u64, got: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        SizeMismatch { expected, got },
    )
}

/// Stream `body` into the store, feeding `hasher` and failing if its length differs from
/// `expected` (a failed stream makes the store roll the upload back).
pub fn metered(body: Body, hasher: SharedHasher, expected: Option<u64>) -> ByteStream {
    Box::pin(Metered {
        inner: Box::pin(body.into_data_stream()),
        hasher,
        seen: 0,
        expected,
        done: false,
    })
}
