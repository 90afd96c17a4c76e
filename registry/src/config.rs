//! The registry's configuration: one TOML file whose every key can be overridden by the
//! environment variable `BERTH_<KEY>` (see the README's configuration table).

use std::time::Duration;

use berth_server::{DatabaseUrl, LogFormat};
use serde::Deserialize;

/// Registry settings. Keys are the environment names without `BERTH_`, lowercased.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://…` or `postgres://…` (its password never shows in `Debug` or logs).
    pub database_url: DatabaseUrl,
    /// `file://…` (or `s3://…` once that backend lands).
    pub storage_url: String,
    /// Listen address.
    pub registry_addr: String,
    /// Public base URL of the auth service (token realm and JWKS).
    pub auth_url: String,
    /// Expected `iss` of tokens.
    pub token_issuer: String,
    /// Expected `aud` of tokens and the challenge's `service`.
    pub token_service: String,
    /// JWKS URL; defaults to `<auth_url>/.well-known/jwks.json`.
    pub token_jwks_url: Option<String>,
    /// PEM file of trusted public keys; when set, used instead of the JWKS URL.
    pub token_public_key_file: Option<String>,
    /// Token realm; defaults to `<auth_url>/jwt/auth`.
    pub token_realm: Option<String>,
    /// Delay before the GC reviews something that may be unreferenced (humantime).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub gc_review_delay: Duration,
    /// How long a replica may serve a cached manifest after another replica changed it
    /// (humantime; `0s` disables the cache).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub manifest_cache_ttl: Duration,
    /// Most bytes the manifest cache holds (payloads, keys and a per-entry overhead); the
    /// least useful entries are evicted past it. `0` disables the cache.
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub manifest_cache_bytes: u64,
    /// How often pull counts collected in memory are written to the database (humantime);
    /// a crash loses at most this much of them.
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub usage_flush_interval: Duration,
    /// Comma-separated project paths that exist, until berth-auth provides projects.
    pub registry_projects: String,
    /// Open upload sessions a repository may have (0: no limit).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub max_uploads_per_repository: u64,
    /// Open upload sessions one user (token subject) may have (0: no limit).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub max_uploads_per_user: u64,
    /// An upload session untouched this long no longer counts against the two caps
    /// (humantime): it was abandoned, and `berth-gc check --repair` removes it.
    pub upload_cap_window: String,
    /// Connection bounds (`http_header_timeout`, `http_body_timeout`, `http_idle_timeout`,
    /// `http_max_connections`).
    #[serde(flatten)]
    pub http: berth_server::HttpSettings,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/berth.db?mode=rwc".into(),
            storage_url: "file://data/blobs".into(),
            registry_addr: "127.0.0.1:5000".into(),
            auth_url: "http://127.0.0.1:8080".into(),
            token_issuer: "berth".into(),
            token_service: "container_registry".into(),
            token_jwks_url: None,
            token_public_key_file: None,
            token_realm: None,
            gc_review_delay: Duration::from_secs(24 * 3600),
            manifest_cache_ttl: Duration::from_secs(3),
            manifest_cache_bytes: crate::service::cache::DEFAULT_BYTES,
            usage_flush_interval: Duration::from_secs(5),
            registry_projects: String::new(),
            max_uploads_per_repository: 100,
            max_uploads_per_user: 200,
            upload_cap_window: "24h".into(),
            http: Default::default(),
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// The realm clients are sent to for tokens.
    pub fn realm(&self) -> String {
        self.token_realm
            .clone()
            .unwrap_or_else(|| format!("{}/jwt/auth", self.auth_url.trim_end_matches('/')))
    }

    /// Where the JWKS lives.
    pub fn jwks_url(&self) -> String {
        self.token_jwks_url.clone().unwrap_or_else(|| {
            format!(
                "{}/.well-known/jwks.json",
                self.auth_url.trim_end_matches('/')
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_database_password() {
        let cfg = Config {
            database_url: "postgres://berth:db-Secret-42@db.internal/berth".into(),
            ..Config::default()
        };
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains("db-Secret-42"), "{shown}");
        assert!(
            shown.contains("postgres://berth:***@db.internal/berth"),
            "{shown}"
        );
        assert_eq!(
            cfg.database_url.expose_secret(),
            "postgres://berth:db-Secret-42@db.internal/berth"
        );
    }
}
