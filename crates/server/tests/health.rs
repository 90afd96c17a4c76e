//! `/-/ready` through the shared health router: an anonymous caller learns only ready or
//! not ready, while the failure's reason reaches the log.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn get_ready(app: axum::Router) -> (StatusCode, String) {
    let response = app
        .oneshot(Request::get("/-/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn ready_failure_reason_goes_to_the_log_not_the_body() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    // Current-thread runtime: the handler runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let reason = "database: error connecting to db.internal:5432 (password authentication failed)";
    let app = berth_server::health_routes(move || async move { Err(reason.to_owned()) });
    let (status, body) = get_ready(app).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready");
    assert!(!body.contains("database") && !body.contains("db.internal"));
    let logged = logs.text();
    assert!(
        logged.contains("db.internal:5432") && logged.contains("readiness check failed"),
        "the reason is logged: {logged:?}"
    );
}

#[tokio::test]
async fn ready_answers_ready_when_the_check_passes() {
    let app = berth_server::health_routes(|| async { Ok(()) });
    assert_eq!(get_ready(app).await, (StatusCode::OK, "ready".to_owned()));
}
