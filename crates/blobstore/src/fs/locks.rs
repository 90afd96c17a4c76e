//! Per-upload locks, so that within one process an append, its clean-up after a failure and
//! a commit of the same upload never interleave.
//!
//! Other processes sharing the directory are not covered: the registry serializes work on
//! one upload through the offsets it records in SQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// The lock table. Entries exist only while someone holds or waits for the lock, so the
/// table does not grow with the number of uploads ever seen.
#[derive(Default)]
pub(super) struct UploadLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl UploadLocks {
    /// Wait for exclusive access to upload `id`.
    pub(super) async fn lock(self: &Arc<Self>, id: &str) -> UploadGuard {
        let mutex = {
            // A poisoned table only means another thread panicked while holding it; the map
            // itself is still consistent (every operation on it is a single call).
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(id.to_owned()).or_default().clone()
        };
        let guard = mutex.clone().lock_owned().await;
        UploadGuard {
            locks: self.clone(),
            id: id.to_owned(),
            mutex,
            guard: Some(guard),
        }
    }
}

/// Exclusive access to one upload; released on drop. It owns everything it needs so it can
/// move into a clean-up task that outlives the request.
pub(super) struct UploadGuard {
    locks: Arc<UploadLocks>,
    id: String,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self
            .locks
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Waiters clone the mutex while holding the table lock, which we hold now: if only
        // the table and this guard still refer to it, nobody is waiting and the entry can go.
        if Arc::strong_count(&self.mutex) <= 2 {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_removed_when_released() {
        let locks = Arc::new(UploadLocks::default());
        let a = locks.lock("a").await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { drop(locks.lock("a").await) })
        };
        tokio::task::yield_now().await;
        drop(a);
        waiter.await.expect("waiter");
        assert!(locks.map.lock().expect("map").is_empty());
    }
}
