//! Streaming a request body onto the end of an upload file, and undoing it if anything
//! goes wrong.
//!
//! Small chunks are gathered into batches of [`BATCH`] bytes so each trip to the blocking
//! pool writes a lot; chunks at least that large are written as they are, without a copy.
//! One batch is written while the next is being gathered, so network and disk overlap.
//! A blocking thread is only used while a write is running, never while waiting for the
//! client, so slow clients do not pin the blocking pool.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::locks::UploadGuard;
use crate::ByteStream;
use crate::error::join_error;

/// Bytes gathered before a write is issued.
const BATCH: usize = 1 << 20;

/// Bytes written between background `fdatasync` calls. Commit must fsync the whole file
/// before the blob becomes visible; starting the flush while the body is still arriving
/// leaves only the tail for that final fsync, so a large push is not held up at the end
/// by a long flush. (It does not make anything durable earlier that matters: only the
/// commit's fsync is relied on.)
const WRITE_BEHIND: u64 = 64 << 20;

/// What the write task hands back: the emptied buffer, for reuse, and the outcome.
type WriteTask = JoinHandle<(Option<Vec<u8>>, io::Result<()>)>;

/// One append in progress. Dropping it before [`Appender::run`] completes (the request was
/// cancelled) truncates the file back in a background task that keeps the upload locked.
pub(super) struct Appender {
    file: Arc<File>,
    /// Size of the file before this append; the length to truncate back to.
    start: u64,
    written: u64,
    buf: Vec<u8>,
    spare: Option<Vec<u8>>,
    pending: Option<WriteTask>,
    /// A background `fdatasync` in flight.
    syncing: Option<JoinHandle<io::Result<()>>>,
    /// Bytes handed to write tasks so far.
    submitted: u64,
    lock: Option<UploadGuard>,
    /// Set once the file is in a final state: fully appended or truncated back.
    settled: bool,
}

impl Appender {
    /// Prepare to append to `file` (opened for appending, currently `start` bytes long).
    pub(super) fn new(file: File, start: u64, lock: UploadGuard) -> Self {
        Appender {
            file: Arc::new(file),
            start,
            written: 0,
            buf: Vec::new(),
            spare: None,
            pending: None,
            syncing: None,
            submitted: 0,
            lock: Some(lock),
            settled: false,
        }
    }

    /// Append all of `body`; returns the new size. On any error the file is truncated back
    /// to its original size before the error is returned.
    pub(super) async fn run(mut self, mut body: ByteStream) -> io::Result<u64> {
        let outcome = async {
            while let Some(chunk) = body.next().await {
                self.push(chunk?).await?;
            }
            self.flush().await?;
            self.wait().await
        }
        .await;
        match outcome {
            Ok(()) => {
                self.settled = true;
                Ok(self.start + self.written)
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    async fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        self.written += chunk.len() as u64;
        if chunk.len() >= BATCH {
            // Already big enough to be worth a write on its own: skip the copy.
            self.flush().await?;
            return self.submit(Batch::Shared(chunk)).await;
        }
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Write whatever is gathered.
    async fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Wait first so the previous batch's buffer comes back and can be swapped in.
        self.wait().await?;
        let next = self.spare.take().unwrap_or_default();
        let full = std::mem::replace(&mut self.buf, next);
        self.submit(Batch::Owned(full)).await
    }

    async fn submit(&mut self, batch: Batch) -> io::Result<()> {
        // Writes go through the shared file cursor, so only one may run at a time.
        self.wait().await?;
        let before = self.start + self.submitted;
        self.submitted += batch.len() as u64;
        let file = self.file.clone();
        self.pending = Some(tokio::task::spawn_blocking(move || batch.write_to(&file)));
        // Counted on the file's offset, not per append, so chunked uploads (many appends
        // of a few MiB each) get the same write-behind as one long stream.
        let after = self.start + self.submitted;
        if before / WRITE_BEHIND != after / WRITE_BEHIND {
            self.write_behind();
        }
        Ok(())
    }

    /// Start a background flush unless one is still running.
    fn write_behind(&mut self) {
        if self.syncing.as_ref().is_some_and(|s| !s.is_finished()) {
            return;
        }
        let file = self.file.clone();
        // Errors are ignored here on purpose: the commit's fsync reports any that matter.
        self.syncing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
    }

    /// Wait for the running write, if any. The handle stays in place while awaiting so that
    /// if this future is dropped, the clean-up still knows to wait for that write.
    async fn wait(&mut self) -> io::Result<()> {
        let Some(task) = self.pending.as_mut() else {
            return Ok(());
        };
        let joined = task.await;
        self.pending = None;
        let (buf, result) = joined.map_err(join_error)?;
        if buf.is_some() {
            self.spare = buf;
        }
        result
    }

    /// Put the file back to its original size.
    async fn rollback(&mut self) {
        // Whatever the running write did, it must land before the truncation, not after.
        let _ = self.wait().await;
        let file = self.file.clone();
        let start = self.start;
        match tokio::task::spawn_blocking(move || file.set_len(start)).await {
            Ok(Ok(())) => self.settled = true,
            Ok(Err(e)) => tracing::error!(error = %e, "could not truncate a failed upload append"),
            Err(e) => tracing::error!(error = %e, "could not truncate a failed upload append"),
        }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let file = self.file.clone();
        let start = self.start;
        let pending = self.pending.take();
        let lock = self.lock.take();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Some(task) = pending {
                        let _ = task.await;
                    }
                    let truncated = tokio::task::spawn_blocking(move || file.set_len(start)).await;
                    if !matches!(truncated, Ok(Ok(()))) {
                        tracing::error!("could not truncate a cancelled upload append");
                    }
                    // Only now may the next operation on this upload start.
                    drop(lock);
                });
            }
            Err(_) => {
                // No runtime left to wait on the write task; truncate as best we can.
                if let Err(e) = file.set_len(start) {
                    tracing::error!(error = %e, "could not truncate a cancelled upload append");
                }
            }
        }
    }
}

/// Bytes for one write.
enum Batch {
    /// A buffer of gathered chunks, returned for reuse after the write.
    Owned(Vec<u8>),
    /// A large chunk written in place.
    Shared(Bytes),
}

impl Batch {
    fn len(&self) -> usize {
        match self {
            Batch::Owned(buf) => buf.len(),
            Batch::Shared(bytes) => bytes.len(),
        }
    }

    fn write_to(self, file: &File) -> (Option<Vec<u8>>, io::Result<()>) {
        let mut out = file;
        match self {
            Batch::Owned(mut buf) => {
                let result = out.write_all(&buf);
                buf.clear();
                (Some(buf), result)
            }
            Batch::Shared(bytes) => (None, out.write_all(&bytes)),
        }
    }
}
