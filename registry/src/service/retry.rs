//! Retrying a registry write transaction that lost a race for the database: the content
//! library's one retry policy ([`berth_content::retry`]), for the registry's own
//! transactions outside it (completing an upload).

use std::future::Future;

use berth_core::ErrorCode;

use crate::error::{RegistryError, Result};

/// Run `op` again while it fails with `UNAVAILABLE` (a lost race or a busy database), up to
/// the content library's bound, with its jittered back-off.
pub async fn on_conflict<T, F, Fut>(op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    berth_content::retry::with_retry("registry_write", op).await
}

impl berth_content::retry::Retryable for RegistryError {
    fn is_retryable(&self) -> bool {
        self.code == ErrorCode::Unavailable || self.code == ErrorCode::Conflict
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code.as_str())
    }
}
