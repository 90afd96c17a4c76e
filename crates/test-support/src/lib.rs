//! Test-only helpers: a fresh database per test on SQLite and PostgreSQL, a stand-in token
//! server signing with a test key, the panic guard for the processes and servers tests
//! start, and the rule for skipping tests whose component is missing.

pub mod db;
pub mod fixtures;
pub mod panics;
pub mod tokens;

pub use db::{Backend, TestDb};
pub use panics::PanicGuard;
pub use tokens::{TestKeys, TokenServer};

/// Under CI (`CI=true`) a missing component fails the test; elsewhere it is skipped loudly.
pub fn require(component: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{component} is required under CI=true but is not available");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_owned();
    eprintln!(
        "SKIPPED: {test}: {component} is not available on this machine; this test did not run"
    );
    // The test script collects these and prints them at the end of the run.
    if let Ok(path) = std::env::var("BERTH_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test}: {component} not available");
        }
    }
    false
}

/// Is `program` on PATH?
pub fn has_program(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
