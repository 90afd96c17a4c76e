//! The registry's shared state, built once at start and cloned (cheaply) into handlers.

use std::ops::Deref;
use std::sync::Arc;

use berth_blobstore::BlobStore;
use berth_db::Db;
use berth_token::Verifier;

use crate::projects::ProjectDirectory;
use crate::service::cache::ManifestCache;
use crate::service::uploads::Hashers;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The members of [`AppState`].
pub struct Inner {
    /// Metadata.
    pub db: Db,
    /// Every change to registry content (manifests, tags, blob links) goes through here.
    pub content: berth_content::Content,
    /// Blob bytes.
    pub store: Arc<dyn BlobStore>,
    /// Checks bearer tokens.
    pub verifier: Verifier,
    /// Which projects exist.
    pub projects: Arc<dyn ProjectDirectory>,
    /// Token realm sent in challenges.
    pub realm: String,
    /// Service name sent in challenges.
    pub service: String,
    /// GC review delay for queue rows this registry writes: berth-gc's recorded value.
    pub review_delay: berth_db::settings::ReviewDelay,
    /// Running hashes of uploads in progress on this process.
    pub hashers: Hashers,
    /// Recently served manifests.
    pub manifests: ManifestCache,
    /// Pull counts not yet written (flushed by a background task).
    pub pulls: Arc<crate::service::usage::PullCounter>,
    /// Caps on open upload sessions.
    pub upload_caps: crate::service::uploads::Caps,
}

impl AppState {
    /// Wrap the members.
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    /// When a queue row written now becomes due.
    pub fn review_after(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        now + chrono::Duration::from_std(self.review_delay.get())
            .unwrap_or(chrono::Duration::days(1))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
