//! Plumbing every Berth binary shares: configuration loading (file < environment),
//! tracing set-up, the Prometheus recorder, health routes, graceful shutdown, the bounded
//! HTTP server ([`serve()`]) and what a panic does ([`install_panic_hook`], [`catch_panics`]).

mod limits;
mod panics;
mod serve;

pub use limits::{ConnectionLimits, HttpSettings};
pub use panics::{PANIC_FILE_ENV, catch_panics, install_panic_hook};
pub use serve::serve;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::de::DeserializeOwned;

pub mod values;
pub use values::{DatabaseUrl, LogFormat};

/// Flags every binary takes.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// TOML config file; every key can be overridden by `BERTH_<KEY>`.
    #[arg(long, global = true)]
    pub config: Option<std::path::PathBuf>,
    /// Do not apply pending migrations at start.
    #[arg(long, global = true)]
    pub no_migrate: bool,
}

/// Load a config struct: the TOML file (if any), then every `BERTH_<KEY>` environment
/// variable as key `<key>` (lowercased), so each file key can be overridden by environment;
/// a variable set to the empty string removes the key (the default applies).
/// Values from the environment are strings; config structs parse them at load with
/// [`de::flexible`], [`values::duration`] or a type's own string form.
pub fn load_config<T: DeserializeOwned>(file: Option<&Path>) -> anyhow::Result<T> {
    let mut table: BTreeMap<String, toml::Value> = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => BTreeMap::new(),
    };
    for (k, v) in std::env::vars() {
        match k.strip_prefix("BERTH_") {
            // An empty variable reads as unset (`BERTH_X= cmd` clears an override) rather
            // than as an empty path or URL.
            Some(key) if !v.is_empty() => {
                table.insert(key.to_ascii_lowercase(), toml::Value::String(v));
            }
            Some(key) => {
                table.remove(&key.to_ascii_lowercase());
            }
            None => {}
        }
    }
    let value = toml::Value::Table(table.into_iter().collect());
    T::deserialize(value).context("invalid configuration")
}

/// Parse a humantime duration (`24h`, `2s`, `500ms`).
pub fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    humantime::parse_duration(s.trim()).with_context(|| format!("invalid duration {s:?}"))
}

/// Start tracing: `RUST_LOG` filter (default `info`), JSON lines when `json` is set.
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colour codes only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    // A second init (tests starting several apps) is harmless; ignore the error.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Like [`init_tracing`], but logs go to stderr: for one-off commands whose report is
/// stdout (`berth-gc check --json`, `berth-gc usage`), so the two never mix.
pub fn init_tracing_stderr(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Install the global Prometheus recorder once; later calls return the same handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Only fails if another recorder is installed; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `/-/health` (alive), `/-/ready` (the `ready` check passes) and `/metrics`.
///
/// `/-/ready` answers anyone, so it says only `ready` (200) or `not ready` (503): which
/// dependency failed and its error (a host name, a path, a driver message) are for the
/// operator and go to the log, not to an anonymous caller.
pub fn health_routes<F, Fut>(ready: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let handle = metrics_handle();
    Router::new()
        .route("/-/health", get(|| async { "ok" }))
        .route(
            "/-/ready",
            get(move || {
                let ready = ready.clone();
                async move { readiness(ready().await) }
            }),
        )
        .route("/metrics", get(move || std::future::ready(handle.render())))
}

/// The `/-/ready` answer for a check's outcome; the failure reason is logged only.
fn readiness(outcome: Result<(), String>) -> (StatusCode, &'static str) {
    match outcome {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(reason) => {
            tracing::warn!(reason = %reason, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Serde helpers for config fields the environment sets as strings.
pub mod de {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer};

    /// A value given natively in the TOML file (`10`, `true`) or as a string by the
    /// environment (`BERTH_X=10`), parsed with `FromStr`.
    pub fn flexible<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Int(i64),
            Str(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Bool(b) => b.to_string(),
            Raw::Int(i) => i.to_string(),
            Raw::Str(s) => s,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}
