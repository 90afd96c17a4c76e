//! The auth service's shared state: database, settings, the current signer and the login
//! rate limiter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_token::Issuer;
use tokio::sync::RwLock;

use crate::config::Config;
use crate::keys;
use crate::ratelimit::Limiter;

/// Shared state of the auth service.
#[derive(Clone)]
pub struct AppState {
    /// The shared database.
    pub db: berth_db::Db,
    /// Every change to registry content (tags, manifests) goes through here.
    pub content: berth_content::Content,
    /// Settings.
    pub cfg: Arc<Config>,
    /// Token lifetime, which bounds how long retired keys stay published.
    pub token_ttl: Duration,
    /// Registry refresh token lifetime.
    pub refresh_ttl: Duration,
    /// The longest an access token made through the API may live (`max_token_lifetime`).
    pub max_token_lifetime: chrono::Duration,
    /// How long a new key is published before it signs.
    pub publish_delay: Duration,
    /// Delay before GC reviews what an API write may have left unreferenced: berth-gc's
    /// recorded value ([`berth_db::settings`]).
    pub review_delay: berth_db::settings::ReviewDelay,
    /// Signs registry tokens.
    pub signer: Arc<Signer>,
    /// Failed-login limiter.
    pub limiter: Arc<Limiter>,
}

impl AppState {
    /// When a GC queue row written now becomes due.
    pub fn review_after(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        now + chrono::Duration::from_std(self.review_delay.get())
            .unwrap_or(chrono::Duration::days(1))
    }
}

/// How often the signer re-reads which key is active at most: a rotation made by another
/// process (`berth-auth keys rotate`) starts signing here within this time after it ripens
/// (or within the publish delay, when that is shorter).
const SIGNER_REFRESH: Duration = Duration::from_secs(10);

/// The issuer for the active signing key, re-read from the database now and then so
/// every replica follows a rotation.
pub struct Signer {
    db: berth_db::Db,
    issuer: String,
    audience: String,
    ttl: Duration,
    publish_delay: Duration,
    refresh: Duration,
    current: RwLock<(Arc<Issuer>, Instant)>,
}

impl Signer {
    /// Load the active key (creating the first one).
    pub async fn load(
        db: berth_db::Db,
        issuer: String,
        audience: String,
        ttl: Duration,
        publish_delay: Duration,
    ) -> anyhow::Result<Signer> {
        let key = keys::active(&db, publish_delay).await?;
        let current = Arc::new(Issuer::new(key, issuer.clone(), audience.clone(), ttl));
        Ok(Signer {
            db,
            issuer,
            audience,
            ttl,
            publish_delay,
            refresh: SIGNER_REFRESH.min(publish_delay),
            current: RwLock::new((current, Instant::now())),
        })
    }

    /// The issuer to sign with now.
    pub async fn get(&self) -> anyhow::Result<Arc<Issuer>> {
        {
            let current = self.current.read().await;
            if current.1.elapsed() < self.refresh {
                return Ok(current.0.clone());
            }
        }
        let mut current = self.current.write().await;
        if current.1.elapsed() >= self.refresh {
            let key = keys::active(&self.db, self.publish_delay).await?;
            if key.kid() != current.0.public_key().kid() {
                tracing::info!(key.kid = key.kid(), "signing with rotated key");
                current.0 = Arc::new(Issuer::new(
                    key,
                    self.issuer.clone(),
                    self.audience.clone(),
                    self.ttl,
                ));
            }
            current.1 = Instant::now();
        }
        Ok(current.0.clone())
    }
}
