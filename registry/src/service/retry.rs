//! Retrying a write transaction that lost a race for the database.
//!
//! SQLite has one writer: a transaction that read before another process committed cannot
//! upgrade to a write and fails at once ("database is locked"), whatever the busy timeout.
//! PostgreSQL can abort a transaction on a serialization failure or deadlock. Both mean
//! "run it again"; every transaction retried here is idempotent as a whole (it rolled back).

use std::future::Future;
use std::time::Duration;

use berth_core::ErrorCode;

use crate::error::Result;

/// Attempts before the conflict is reported (as `UNAVAILABLE`, 503: clients retry).
const ATTEMPTS: u32 = 5;

/// Run `op` until it succeeds, fails otherwise, or conflicts [`ATTEMPTS`] times.
pub async fn on_conflict<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delay = Duration::from_millis(5);
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.code == ErrorCode::Unavailable && attempt < ATTEMPTS => {
                tracing::debug!(attempt, "write transaction conflicted; retrying");
                metrics::counter!("berth_registry_db_retries_total").increment(1);
                tokio::time::sleep(delay).await;
                delay *= 3;
                attempt += 1;
            }
            other => return other,
        }
    }
}
