//! The registry's configuration: one TOML file whose every key can be overridden by the
//! environment variable `BERTH_<KEY>` (see the README's configuration table).

use serde::Deserialize;

/// Registry settings. Keys are the environment names without `BERTH_`, lowercased.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
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
    pub gc_review_delay: String,
    /// How long a replica may serve a cached manifest after another replica changed it
    /// (humantime; `0s` disables the cache).
    pub manifest_cache_ttl: String,
    /// Most bytes the manifest cache holds (payloads, keys and a per-entry overhead); the
    /// least useful entries are evicted past it. `0` disables the cache.
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub manifest_cache_bytes: u64,
    /// How often pull counts collected in memory are written to the database (humantime);
    /// a crash loses at most this much of them.
    pub usage_flush_interval: String,
    /// Comma-separated project paths that exist, until berth-auth provides projects.
    pub registry_projects: String,
    /// `text` or `json` logs.
    pub log_format: String,
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
            gc_review_delay: "24h".into(),
            manifest_cache_ttl: "3s".into(),
            manifest_cache_bytes: crate::service::cache::DEFAULT_BYTES,
            usage_flush_interval: "5s".into(),
            registry_projects: String::new(),
            log_format: "text".into(),
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
