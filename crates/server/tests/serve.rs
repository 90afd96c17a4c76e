//! `berth_server::serve` in process, with timeouts short enough to watch: a body that keeps
//! flowing outlives every timeout, a stalled one ends its request, idle and trickling
//! connections are closed, keep-alive still works, and graceful shutdown lets the request
//! in flight finish.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{get, post};
use berth_server::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMITS: ConnectionLimits = ConnectionLimits {
    header_timeout: Duration::from_millis(400),
    body_timeout: Duration::from_millis(400),
    idle_timeout: Duration::from_millis(600),
    max_connections: 64,
};

fn router() -> Router {
    Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "done"
            }),
        )
        .route(
            "/count",
            post(|body: Body| async move {
                use http_body_util::BodyExt;
                match body.collect().await {
                    Ok(all) => (StatusCode::OK, format!("{} bytes", all.to_bytes().len())),
                    Err(_) => (StatusCode::BAD_REQUEST, "body stalled".to_owned()),
                }
            }),
        )
}

/// Serve on a free port; the address, a trigger for graceful shutdown and the server task.
async fn start() -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(berth_server::serve(listener, router(), LIMITS, async {
        let _ = rx.await;
    }));
    (addr, tx, server)
}

/// Read until the server closes the connection (at most 5 s); what it sent and when.
async fn until_closed(s: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    (String::from_utf8_lossy(&out).into_owned(), since.elapsed())
}

#[tokio::test]
async fn a_body_that_keeps_flowing_outlives_every_timeout() {
    let (addr, _stop, _server) = start().await;
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(
        b"POST /count HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2000\r\n\r\n",
    )
    .await
    .expect("head");
    // 2 s in all, far past every timeout, but never a pause as long as the body timeout.
    for _ in 0..20 {
        s.write_all(&[b'a'; 100]).await.expect("chunk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answer, _) = until_closed(&mut s, Instant::now()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("2000 bytes"), "{answer}");
}

#[tokio::test]
async fn a_stalled_body_ends_the_request_and_the_connection() {
    let (addr, _stop, _server) = start().await;
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(b"POST /count HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\n\r\n0123456789")
        .await
        .expect("head");
    let (answer, after) = until_closed(&mut s, Instant::now()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        after < Duration::from_millis(1500),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn idle_and_trickling_connections_are_closed() {
    let (addr, _stop, _server) = start().await;
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    let since = Instant::now();
    let (answer, after) = until_closed(&mut idle, since).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(
        after >= Duration::from_millis(500),
        "closed early, after {after:?}"
    );
    assert!(
        after < Duration::from_millis(1500),
        "closed after {after:?}"
    );

    // One byte of a head every 100 ms: alive by the idle rule, cut off by the head rule.
    let mut trickle = TcpStream::connect(&addr).await.expect("connect");
    let since = Instant::now();
    let mut closed = None;
    for byte in b"GET /ping HTTP/1.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if trickle.write_all(&[*byte]).await.is_err() {
            closed = Some(since.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), trickle.read(&mut buf)).await
        {
            closed = Some(since.elapsed());
            break;
        }
    }
    let after = closed.expect("a trickled head was never cut off");
    assert!(
        after < Duration::from_millis(1200),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn keep_alive_serves_one_request_after_another() {
    let (addr, _stop, _server) = start().await;
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    for _ in 0..3 {
        s.write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("request");
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.expect("response");
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("pong"), "{answer}");
        // Shorter than the idle timeout: the connection is still there.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_lets_the_request_in_flight_finish() {
    let (addr, stop, server) = start().await;
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    let mut busy = TcpStream::connect(&addr).await.expect("connect");
    busy.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("request");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let since = Instant::now();
    stop.send(()).expect("stop");
    // The idle connection is closed at once, the busy one after its answer.
    let (answer, after) = until_closed(&mut idle, since).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(
        after < Duration::from_millis(400),
        "idle closed after {after:?}"
    );
    let (answer, _) = until_closed(&mut busy, since).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("done"), "{answer}");
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("serve did not return after the last connection")
        .expect("join")
        .expect("serve");
    assert!(TcpStream::connect(&addr).await.is_err(), "still accepting");
}
