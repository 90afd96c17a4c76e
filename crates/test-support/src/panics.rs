//! The suite's panic guard: a panic anywhere in a process or in-process server a test starts
//! fails that test, even when the request that panicked got an answer (a 500) the test did
//! not look at. Processes get `BERTH_PANIC_FILE` (the binaries' panic hook appends a line per
//! panic there); in-process servers record what their catch-panic layer caught.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use berth_server::PANIC_FILE_ENV;

/// One process's panic file; checked when dropped (after the process was stopped).
#[derive(Debug)]
pub struct PanicGuard {
    what: String,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl PanicGuard {
    /// A fresh, empty panic file for the process `what` (named in the failure).
    pub fn new(what: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for the panic file");
        PanicGuard {
            what: what.to_owned(),
            path: dir.path().join("panics"),
            _dir: dir,
        }
    }

    /// The file to pass as `BERTH_PANIC_FILE`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Point `cmd`'s panic file here.
    pub fn arm<'c>(&self, cmd: &'c mut std::process::Command) -> &'c mut std::process::Command {
        cmd.env(PANIC_FILE_ENV, &self.path)
    }

    /// What the process recorded so far (empty when it never panicked).
    pub fn recorded(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Fail (panic) when the process recorded a panic.
    pub fn check(&self) {
        let text = self.recorded();
        assert!(
            text.trim().is_empty(),
            "{} panicked while serving this test:\n{text}",
            self.what
        );
    }
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test is already failing; a second panic would abort the whole binary.
            let text = self.recorded();
            if !text.trim().is_empty() {
                eprintln!("{} also panicked:\n{text}", self.what);
            }
        } else {
            self.check();
        }
    }
}

/// Panics caught by an in-process server's catch-panic layer ([`catch_recorded`]); checked
/// when dropped like [`PanicGuard`].
#[derive(Debug, Clone, Default)]
pub struct PanicLog {
    what: Arc<str>,
    caught: Arc<Mutex<Vec<String>>>,
}

impl PanicLog {
    /// An empty log for the server `what`.
    pub fn new(what: &str) -> Self {
        PanicLog {
            what: what.into(),
            caught: Arc::default(),
        }
    }

    /// The panics caught so far.
    pub fn caught(&self) -> Vec<String> {
        self.caught.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, payload: &(dyn Any + Send)) {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string panic payload>".to_owned());
        if let Ok(mut c) = self.caught.lock() {
            c.push(text);
        }
    }
}

/// `router` with panics turned into 500s and recorded in `log`, which fails the test when
/// its last clone is dropped.
pub fn catch_recorded(router: axum::Router, log: &PanicLog) -> axum::Router {
    let log = log.clone();
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        move |payload: Box<dyn Any + Send>| {
            log.record(payload.as_ref());
            axum::http::Response::builder()
                .status(500)
                .body(axum::body::Body::from("panic"))
                .unwrap_or_default()
        },
    ))
}

/// Owns a [`PanicLog`] and checks it when dropped.
#[derive(Debug)]
pub struct PanicLogGuard(pub PanicLog);

impl Drop for PanicLogGuard {
    fn drop(&mut self) {
        let caught = self.0.caught();
        if caught.is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("{} also panicked: {caught:?}", self.0.what);
        } else {
            panic!(
                "{} panicked while serving this test: {caught:?}",
                self.0.what
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_panic_file_passes() {
        let guard = PanicGuard::new("berth-test");
        guard.check();
        std::fs::write(guard.path(), "").unwrap();
        drop(guard);
    }

    #[test]
    #[should_panic(expected = "berth-test panicked while serving this test")]
    fn a_recorded_panic_fails_the_test_on_drop() {
        let guard = PanicGuard::new("berth-test");
        std::fs::write(guard.path(), "pid 1 thread x panicked at a.rs:1:1: boom\n").unwrap();
        drop(guard);
    }

    #[tokio::test]
    async fn an_in_process_panic_is_answered_and_fails_the_test() {
        use tower::ServiceExt;
        let log = PanicLog::new("token server");
        async fn boom() -> &'static str {
            panic!("handler exploded")
        }
        let router = axum::Router::new().route("/boom", axum::routing::get(boom));
        let router = catch_recorded(router, &log);
        let r = router
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(log.caught(), vec!["handler exploded".to_owned()]);
        let guard = PanicLogGuard(log);
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(guard)));
        assert!(dropped.is_err(), "dropping the guard fails the test");
    }
}
