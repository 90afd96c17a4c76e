//! berth-auth: the control plane. Users, groups, projects, members and every registry
//! credential; the Docker token endpoint `/jwt/auth` that turns them into short-lived JWTs;
//! the signing keys and their JWKS; the GitLab-compatible management API.

pub mod api;
pub mod authz;
pub mod body_limits;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod deletions;
pub mod grants;
pub mod identity;
pub mod jwt;
pub mod keys;
pub mod oauth;
pub mod passwords;
pub mod ratelimit;
pub mod refresh;
pub mod secrets;
pub mod state;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// A built auth service, listener bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    limits: berth_server::ConnectionLimits,
}

impl Application {
    /// Connect, migrate (unless told not to), make sure a signing key and the `root` admin
    /// exist, bind.
    pub async fn build(cfg: Config, migrate: bool) -> anyhow::Result<Self> {
        let db = berth_db::connect(cfg.database_url.expose_secret())
            .await
            .context("connecting to the database (BERTH_DATABASE_URL)")?;
        if migrate {
            berth_db::migrate(&db)
                .await
                .context("applying migrations")?;
        }
        let limits = cfg.http.limits()?;
        let token_ttl = cfg.token_ttl;
        let refresh_ttl = cfg.refresh_token_ttl;
        let max_token_lifetime = cfg.max_token_lifetime;
        anyhow::ensure!(
            !max_token_lifetime.is_zero(),
            "BERTH_MAX_TOKEN_LIFETIME must be greater than zero"
        );
        // Expiry dates must stay storable and printable (four-digit years).
        let max_token_lifetime = chrono::Duration::from_std(max_token_lifetime)
            .ok()
            .filter(|d| *d <= chrono::Duration::days(3650 * 100))
            .context("BERTH_MAX_TOKEN_LIFETIME must be at most 100 years")?;
        let window = cfg.auth_failure_window;
        let publish_delay = cfg.key_publish_delay;
        // berth-gc owns the delay; this only seeds a database none has recorded one in.
        let review_delay = berth_db::settings::ReviewDelay::follow(
            &db,
            cfg.gc_review_delay,
            berth_db::settings::REVIEW_DELAY_REFRESH,
        )
        .await
        .context("reading the GC review delay berth-gc records")?;
        let signer = state::Signer::load(
            db.clone(),
            cfg.token_issuer.clone(),
            cfg.token_service.clone(),
            token_ttl,
            publish_delay,
        )
        .await?;
        tracing::info!(
            key.kid = signer.get().await?.public_key().kid(),
            "signing with key"
        );
        bootstrap::ensure_root(&db, cfg.root_password.as_ref()).await?;
        let listener = TcpListener::bind(&cfg.auth_addr)
            .await
            .with_context(|| format!("binding {}", cfg.auth_addr))?;
        let limiter = ratelimit::Limiter::new(
            cfg.auth_failures_per_user,
            cfg.auth_failures_per_address,
            window,
        );
        Ok(Application {
            listener,
            state: AppState {
                content: berth_content::Content::new(db.clone(), review_delay.clone()),
                db,
                cfg: Arc::new(cfg),
                token_ttl,
                refresh_ttl,
                max_token_lifetime,
                publish_delay,
                review_delay,
                signer: Arc::new(signer),
                limiter: Arc::new(limiter),
            },
            limits,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The router (tests drive it with `oneshot`).
    pub fn router(state: AppState) -> Router {
        let ready_db = state.db.clone();
        let ready = move || {
            let db = ready_db.clone();
            async move { db.ping().await.map_err(|e| format!("database: {e}")) }
        };
        use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
        let router = Router::new()
            .route("/.well-known/jwks.json", get(get_jwks))
            .merge(jwt::routes())
            .merge(oauth::routes())
            .nest("/api/v4", api::router())
            .with_state(state)
            .layer(axum::middleware::from_fn(body_limits::limit_body))
            .layer(axum::middleware::from_fn(request_span))
            .merge(berth_server::health_routes(ready));
        // A panicking request answers as any other internal error of the API.
        berth_server::catch_panics(router, r#"{"message":"500 Internal Server Error"}"#)
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
    }

    /// Serve until SIGINT/SIGTERM. No background work runs here: deletions are jobs that
    /// berth-gc runs.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let app = Self::router(self.state);
        // The server gives handlers `ConnectInfo<SocketAddr>` (the rate limiter's address).
        berth_server::serve(
            self.listener,
            app,
            self.limits,
            berth_server::shutdown_signal(),
        )
        .await
    }
}

/// One span per request with its id, method and path (never the query or headers, which may
/// carry credentials), and one line with the status and duration.
async fn request_span(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        http.method = %req.method(),
        http.path = %req.uri().path(),
    );
    async move {
        let started = std::time::Instant::now();
        let response = next.run(req).await;
        tracing::info!(
            http.status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request done"
        );
        response
    }
    .instrument(span)
    .await
}

/// `GET /.well-known/jwks.json`: every key whose tokens may still be valid.
async fn get_jwks(State(state): State<AppState>) -> Response {
    match keys::published(&state.db, state.token_ttl, state.publish_delay).await {
        Ok(keys) => axum::Json(berth_token::jwks(&keys)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot load signing keys");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "signing keys unavailable",
            )
                .into_response()
        }
    }
}
