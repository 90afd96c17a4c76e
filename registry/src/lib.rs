//! berth-registry: the OCI/Docker `/v2/` data plane. `main.rs` only loads configuration and
//! calls [`Application::build`]; tests build the same application on port 0.

pub mod auth;
pub mod config;
pub mod error;
pub mod projects;
pub mod routes;
pub mod service;
pub mod state;

use std::sync::Arc;

use anyhow::Context;
use berth_token::{KeySource, PublicKey, Verifier};
use tokio::net::TcpListener;

pub use config::Config;
pub use projects::{ConfiguredProjects, DbProjects, ProjectDirectory};
pub use state::AppState;

/// A built registry: listening socket bound, state ready.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    usage_flush_interval: std::time::Duration,
    limits: berth_server::ConnectionLimits,
    manifest_cache_ttl: std::time::Duration,
}

impl Application {
    /// Connect to the database and store (migrating unless `migrate` is false), load the
    /// token keys and bind the listener.
    pub async fn build(cfg: Config, migrate: bool) -> anyhow::Result<Self> {
        let db = berth_db::connect(cfg.database_url.expose_secret())
            .await
            .with_context(|| "connecting to the database (BERTH_DATABASE_URL)")?;
        // A configured list is for running without berth-auth; otherwise the projects are
        // berth-auth's, in the same database.
        let projects: Arc<dyn ProjectDirectory> = if cfg.registry_projects.trim().is_empty() {
            Arc::new(DbProjects::new(db.clone()))
        } else {
            Arc::new(ConfiguredProjects::from_list(&cfg.registry_projects))
        };
        Self::build_with(cfg, db, migrate, projects).await
    }

    /// [`Application::build`] with an explicit database handle and project directory.
    pub async fn build_with(
        cfg: Config,
        db: berth_db::Db,
        migrate: bool,
        projects: Arc<dyn ProjectDirectory>,
    ) -> anyhow::Result<Self> {
        if migrate {
            berth_db::migrate(&db)
                .await
                .context("applying migrations")?;
        }
        let store = berth_blobstore::open_store(&cfg.storage_url)
            .await
            .with_context(|| format!("opening the blob store {}", cfg.storage_url))?;
        let source = match &cfg.token_public_key_file {
            Some(path) => {
                let pem =
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
                KeySource::Static(
                    PublicKey::from_pem(&pem).with_context(|| format!("parsing keys in {path}"))?,
                )
            }
            None => KeySource::Jwks {
                url: cfg.jwks_url(),
            },
        };
        let verifier = Verifier::new(source, cfg.token_issuer.clone(), cfg.token_service.clone());
        // berth-gc owns the delay; this only seeds a database none has recorded one in.
        let review_delay = berth_db::settings::ReviewDelay::follow(
            &db,
            cfg.gc_review_delay,
            berth_db::settings::REVIEW_DELAY_REFRESH,
        )
        .await
        .context("reading the GC review delay berth-gc records")?;
        let limits = cfg.http.limits()?;
        let upload_caps = service::uploads::Caps::from_config(&cfg)?;
        let usage_flush_interval = cfg.usage_flush_interval;
        anyhow::ensure!(
            !usage_flush_interval.is_zero(),
            "BERTH_USAGE_FLUSH_INTERVAL must be greater than zero"
        );
        let manifest_cache_ttl = cfg.manifest_cache_ttl;
        let state = AppState::new(state::Inner {
            content: berth_content::Content::new(db.clone(), review_delay.clone()),
            db,
            store,
            verifier,
            projects,
            realm: cfg.realm(),
            service: cfg.token_service.clone(),
            review_delay,
            hashers: Default::default(),
            manifests: service::cache::ManifestCache::new(
                cfg.manifest_cache_ttl,
                cfg.manifest_cache_bytes,
            ),
            pulls: Default::default(),
            upload_caps,
        });
        let listener = TcpListener::bind(&cfg.registry_addr)
            .await
            .with_context(|| format!("binding {}", cfg.registry_addr))?;
        Ok(Application {
            listener,
            state,
            usage_flush_interval,
            limits,
            manifest_cache_ttl,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (tests inspect the database through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves; in-flight requests finish first.
    pub async fn run_until<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
        // Pull counts are flushed in the background and once more after the last request
        // (graceful shutdown); a crash loses at most one interval of them (service::usage).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let flusher = tokio::spawn(self.state.pulls.clone().run(
            self.state.db.clone(),
            self.usage_flush_interval,
            stop_rx.clone(),
        ));
        let sweeper = tokio::spawn(sweep_manifest_cache(
            self.state.clone(),
            self.manifest_cache_ttl,
            stop_rx,
        ));
        // Every request gets an `x-request-id` (a client's own is kept), logged in the
        // request's span and echoed in the response, so a client report finds its log lines.
        let app = routes::router(self.state)
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
        let served = berth_server::serve(self.listener, app, self.limits, shutdown).await;
        let _ = stop_tx.send(true);
        let _ = flusher.await;
        let _ = sweeper.await;
        served
    }

    /// Serve until SIGINT/SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(berth_server::shutdown_signal()).await
    }
}

/// Evict expired manifest-cache entries once per TTL, so the memory a burst of pulls took is
/// given back even when no request comes to trigger the cache's own upkeep.
async fn sweep_manifest_cache(
    state: AppState,
    ttl: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if ttl.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(ttl);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => state.manifests.evict_expired(),
            _ = stop.changed() => return,
        }
    }
}
