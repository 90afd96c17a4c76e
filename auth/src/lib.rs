//! berth-auth: the control plane. So far: token signing keys (created on first start,
//! rotated by `berth-auth keys rotate`) and the JWKS the registry verifies tokens with.
//! Users, projects, credentials and `/jwt/auth` come next (issue 3).

pub mod config;
pub mod keys;

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

pub use config::Config;

/// Shared state of the auth service.
#[derive(Clone)]
pub struct AppState {
    /// The shared database.
    pub db: berth_db::Db,
    /// Token lifetime, which bounds how long retired keys stay published.
    pub token_ttl: Duration,
}

/// A built auth service, listener bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connect, migrate (unless told not to), make sure a signing key exists, bind.
    pub async fn build(cfg: Config, migrate: bool) -> anyhow::Result<Self> {
        let db = berth_db::connect(&cfg.database_url)
            .await
            .context("connecting to the database (BERTH_DATABASE_URL)")?;
        if migrate {
            berth_db::migrate(&db)
                .await
                .context("applying migrations")?;
        }
        let key = keys::active(&db).await?;
        tracing::info!(key.kid = key.kid(), "signing with key");
        let token_ttl = berth_server::parse_duration(&cfg.token_ttl)?;
        let listener = TcpListener::bind(&cfg.auth_addr)
            .await
            .with_context(|| format!("binding {}", cfg.auth_addr))?;
        Ok(Application {
            listener,
            state: AppState { db, token_ttl },
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serve until SIGINT/SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let ready_db = self.state.db.clone();
        let ready = move || {
            let db = ready_db.clone();
            async move { db.ping().await.map_err(|e| format!("database: {e}")) }
        };
        let app = Router::new()
            .route("/.well-known/jwks.json", get(get_jwks))
            .with_state(self.state)
            .merge(berth_server::health_routes(ready));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(berth_server::shutdown_signal())
            .await
    }
}

/// `GET /.well-known/jwks.json`: every key whose tokens may still be valid.
async fn get_jwks(State(state): State<AppState>) -> Response {
    match keys::published(&state.db, state.token_ttl).await {
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
