//! Blob link changes, through the content library: removing a blob from a repository queues
//! the blob for GC review in the same transaction, and is refused while a manifest of the
//! repository references it.

use berth_core::Digest;

use crate::error::Result;
use crate::state::AppState;

/// Unlink `digest` from a repository; `false` if it was not linked.
pub async fn unlink(state: &AppState, repository_id: i64, digest: &Digest) -> Result<bool> {
    Ok(state.content.unlink_blob(repository_id, digest).await?)
}
