//! Running a write transaction again when it lost a race for the database.
//!
//! SQLite has one writer: a transaction that read before another process committed cannot
//! upgrade to a write and fails at once ("database is locked"). PostgreSQL aborts one side
//! of a deadlock and, under stricter isolation, serialization failures. Both mean "run it
//! again from the start"; every operation retried here is one transaction that rolled back
//! whole, so running it again is safe. A unique or foreign-key conflict raised after the
//! operation's own checks passed is also a lost race (two pushes creating one tag, a GC
//! worker deleting a blob a manifest was about to reference): running again sees the
//! winner's committed state and answers from it.
//!
//! Attempts are bounded and spaced with full jitter (a random delay up to an exponentially
//! growing cap), so writers that collided do not collide again in lock step.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// Attempts before the last error is returned to the caller.
pub const ATTEMPTS: u32 = 6;
/// The first back-off cap; it doubles per attempt.
const BASE: Duration = Duration::from_millis(4);
/// The largest back-off cap.
const MAX: Duration = Duration::from_millis(250);

/// Errors that can say whether running the whole operation again may succeed.
pub trait Retryable {
    /// Did the operation lose a race that another attempt may win?
    fn is_retryable(&self) -> bool;
}

impl Retryable for berth_db::Error {
    fn is_retryable(&self) -> bool {
        use berth_db::ErrorKind::*;
        matches!(self.kind(), Retryable | UniqueConflict | ForeignKeyConflict)
    }
}

/// Run `op` until it succeeds, fails for good, or has lost [`ATTEMPTS`] races; the last
/// error is returned as it is (its kind tells the caller what to answer).
pub async fn with_retry<T, E, F, Fut>(what: &'static str, mut op: F) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tracing::debug!(operation = what, attempt, error = %e, "write lost a race; running it again");
                metrics::counter!("berth_content_retries_total", "operation" => what).increment(1);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(operation = what, attempts = attempt, error = %e, "write kept losing races; giving up");
                metrics::counter!("berth_content_retries_exhausted_total", "operation" => what)
                    .increment(1);
                return Err(e);
            }
            other => return other,
        }
    }
}

/// A random delay in `[0, min(MAX, BASE × 2^(attempt-1))]`.
fn backoff(attempt: u32) -> Duration {
    let cap = BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX);
    let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::thread_rng().gen_range(0..=micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Lost(bool);
    impl std::fmt::Display for Lost {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "lost={}", self.0)
        }
    }
    impl Retryable for Lost {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[tokio::test]
    async fn retries_races_a_bounded_number_of_times() {
        let calls = AtomicU32::new(0);
        let r: Result<(), Lost> = with_retry("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Lost(true))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried_and_success_stops() {
        let calls = AtomicU32::new(0);
        let r: Result<(), Lost> = with_retry("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Lost(false))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let r: Result<u32, Lost> = with_retry("test", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 { Err(Lost(true)) } else { Ok(n) }
        })
        .await;
        assert_eq!(r.ok(), Some(2));
    }

    #[test]
    fn backoff_is_capped() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= MAX);
        }
    }
}
