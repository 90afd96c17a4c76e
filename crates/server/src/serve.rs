//! Serving a router with time and size bounds on every connection: the one accept loop all
//! three binaries use instead of `axum::serve`.
//!
//! Each connection is in one of three phases, and each phase has its own deadline:
//!
//! - **idle** (just accepted, or its last response sent): the next request's first byte must
//!   arrive within `idle_timeout`, else the connection is closed. This is the keep-alive
//!   timeout, and it also closes connections that are opened and never used.
//! - **head** (a request's first byte read): its head (request line and headers) must be
//!   complete within `header_timeout` of that byte, else the connection is closed. A client
//!   that trickles its headers one byte at a time gains nothing.
//! - **busy** (the head is in, the handler runs and the response is written): the request
//!   body may not pause for longer than `body_timeout` between bytes (an idle timeout, not a
//!   total one, so a 1 GiB push on a slow link still works). A body that stalls ends with
//!   an error the handler sees, so it stops (an upload releases its lock and keeps what it
//!   had), and the connection is closed after the response, because the rest of the body is
//!   never read.
//!
//! At most `max_connections` connections are served at once. A connection beyond that is
//! refused at once with a short `503 Service Unavailable`, `Retry-After: 1` and
//! `Connection: close`, rather than left waiting unanswered in the kernel's queue: a client
//! (or load balancer) then knows to retry and the process keeps its memory bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::ConnectionLimits;

/// Refusals being written at once; beyond this a refused connection is just closed, so a
/// flood of connections cannot make the refusals themselves a cost.
const MAX_REFUSALS: usize = 256;

/// How long a refusal may take to write and for the client to read it before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The answer to a connection beyond the limit.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 43\r\n\
\r\n\
too many connections, retry in a second...\n";

/// Serve `router` on `listener` within `limits` until `shutdown` resolves; then stop
/// accepting, let each connection finish the request it is in (idle ones close at once) and
/// return when all are closed. Handlers can extract `ConnectInfo<SocketAddr>`.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    // Every connection task holds a receiver: the sender tells them to stop, and
    // `closed()` resolves once the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors or a connection reset before it was accepted:
                // log, pause briefly (so a full descriptor table is not spun on) and go on.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small writes (a response head, a 202 with no body) go out at once.
        let _ = stream.set_nodelay(true);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let (router, stop) = (router.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    serve_connection(stream, remote, router, limits, stop).await;
                    drop(permit);
                });
            }
            Err(_) => {
                metrics::counter!("berth_http_connections_refused_total").increment(1);
                if let Ok(slot) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(slot);
                    });
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    stop_tx.closed().await;
    Ok(())
}

/// Answer a connection beyond the limit with a 503 and close it. The request is not read,
/// but what the client sent is drained for a moment after the answer: closing a socket with
/// unread bytes resets it, and a reset can destroy the answer before the client reads it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await?;
            if n == 0 {
                break;
            }
            drained += n;
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// Where a connection stands (see the module documentation).
#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle(Instant),
    Head(Instant),
    Busy,
}

/// A connection's phase, shared by its socket (which sees the first byte of a request), its
/// service (which sees the head complete and the response end) and its watchdog.
struct Tracker {
    phase: Mutex<Phase>,
    /// Requests whose response has not been fully written.
    in_flight: AtomicU64,
    /// Wakes the watchdog when a deadline moves earlier.
    changed: Notify,
}

impl Tracker {
    fn new() -> Self {
        Tracker {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            in_flight: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
        self.changed.notify_one();
    }

    fn bytes_read(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.set(Phase::Busy);
    }

    fn response_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.set(Phase::Idle(Instant::now()));
        }
    }

    /// When the current phase runs out, if it can.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Head(since) => Some(since + limits.header_timeout),
            Phase::Busy => None,
        }
    }
}

/// The socket, telling the tracker when bytes arrive.
struct Watched {
    stream: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.tracker.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that marks its request finished when hyper is done with it (written or
/// abandoned).
struct Tracked {
    inner: Body,
    tracker: Arc<Tracker>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.tracker.response_done();
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serve one connection until it closes, a deadline passes or the server stops.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = Arc::new(Tracker::new());
    let io = hyper_util::rt::TokioIo::new(Watched {
        stream,
        tracker: tracker.clone(),
    });
    let service = {
        let tracker = tracker.clone();
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            tracker.request_started();
            let (router, tracker) = (router.clone(), tracker.clone());
            let mut req = req.map(|incoming| {
                Body::new(tower_http::timeout::TimeoutBody::new(
                    limits.body_timeout,
                    incoming,
                ))
            });
            req.extensions_mut().insert(ConnectInfo(remote));
            async move {
                let response = match router.oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, std::convert::Infallible>(response.map(|inner| {
                    Body::new(Tracked {
                        inner,
                        tracker: tracker.clone(),
                    })
                }))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        // Heads are timed here (the `head` phase), not by hyper, whose timer would also
        // start while a kept-alive connection is merely idle.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = tracker.deadline(&limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    // A client that resets or sends garbage: its own business, not ours.
                    tracing::debug!(error = %e, client.address = %remote, "connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if tracker.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    metrics::counter!("berth_http_connections_timed_out_total").increment(1);
                    tracing::debug!(client.address = %remote, "closing a connection that ran out of time");
                    // Dropping the connection closes the socket.
                    return;
                }
            }
            () = tracker.changed.notified() => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                // Idle connections close now, busy ones after their response. A dropped
                // sender (`changed` failing) means the server is gone: stop as well.
                let _ = changed;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
