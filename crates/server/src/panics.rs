//! What a panic does in a Berth process: it is logged through tracing (and, for the test
//! suite's guard, appended to the file `BERTH_PANIC_FILE` names), and inside a request it
//! becomes a clean 500 in the service's own error format instead of a dropped connection.

use std::any::Any;
use std::io::Write;
use std::path::PathBuf;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

/// The environment variable naming a file every panic of the process is appended to, one
/// line each. The end-to-end harness sets it for every process it starts and fails the test
/// when the file is not empty, so no request path may panic unnoticed.
pub const PANIC_FILE_ENV: &str = "BERTH_PANIC_FILE";

/// Install the process's panic hook (call once, first thing in `main`, after tracing is
/// set up): log the panic as an error event with its location, append one line to
/// [`PANIC_FILE_ENV`]'s file when that is set, then run the previous hook (the standard
/// message on stderr, with a backtrace when `RUST_BACKTRACE` asks for one).
pub fn install_panic_hook() {
    let file = std::env::var_os(PANIC_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = payload_text(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned();
        tracing::error!(
            panic.message = %message,
            panic.location = %location,
            thread = %thread,
            "panic"
        );
        if let Some(path) = &file {
            // One line per panic, whatever the message holds, so a reader can count them.
            let line = format!(
                "pid {} thread {thread} panicked at {location}: {}\n",
                std::process::id(),
                message.replace(['\n', '\r'], " ")
            );
            // Best effort: a hook must not panic, and nothing better can be done here.
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
        previous(info);
    }));
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// `router` with panics in its handlers turned into `500` answers whose body is `body`
/// (`application/json`, the service's own error format). The panic itself was already
/// logged (and recorded) by the hook [`install_panic_hook`] installs; without this layer
/// the connection would be dropped and the client would see no answer at all.
pub fn catch_panics(router: Router, body: &'static str) -> Router {
    router.layer(CatchPanicLayer::custom(
        move |_: Box<dyn Any + Send>| -> Response {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        },
    ))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_given_format() {
        let router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }));
        let router = catch_panics(router, r#"{"message":"500 Internal Server Error"}"#);
        let r = router
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"message":"500 Internal Server Error"}"#);
        let r = router
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// Set in the child process [`the_hook_logs_each_panic_as_one_line`] starts.
    const CHILD: &str = "BERTH_PANIC_HOOK_TEST_CHILD";

    /// The hook is process-wide, so it is tried in a child process: this test binary run
    /// again with only this test selected and [`CHILD`] set, where it installs the hook and
    /// panics twice on other threads.
    #[test]
    fn the_hook_logs_each_panic_as_one_line() {
        if std::env::var_os(CHILD).is_some() {
            install_panic_hook();
            for message in ["first\nof two lines", "second"] {
                let _ = std::thread::Builder::new()
                    .name("worker".into())
                    .spawn(move || panic!("{message}"))
                    .unwrap()
                    .join();
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("panics");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "panics::tests::the_hook_logs_each_panic_as_one_line",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env(PANIC_FILE_ENV, &file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("thread worker panicked at"), "{text}");
        assert!(lines[0].ends_with("first of two lines"), "{text}");
        assert!(lines[1].ends_with("second"), "{text}");
        // The previous (standard) hook still ran.
        assert!(String::from_utf8_lossy(&out.stderr).contains("second"));
    }

    #[test]
    fn payloads_become_text() {
        assert_eq!(payload_text(&"static"), "static");
        assert_eq!(payload_text(&String::from("owned")), "owned");
        assert_eq!(payload_text(&42_u8), "<non-string panic payload>");
    }
}
