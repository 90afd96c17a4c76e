//! The auth service's configuration: one TOML file whose every key can be overridden by
//! `BERTH_<KEY>` (the README's table).

use serde::Deserialize;

/// Auth settings. Keys are the environment names without `BERTH_`, lowercased.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://…` or `postgres://…` (the same database as the registry).
    pub database_url: String,
    /// Listen address.
    pub auth_addr: String,
    /// `iss` of issued tokens.
    pub token_issuer: String,
    /// `aud` of issued tokens (the registry's service name).
    pub token_service: String,
    /// Token lifetime (humantime). A retired key stays published this long (plus leeway).
    pub token_ttl: String,
    /// `text` or `json` logs.
    pub log_format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/berth.db?mode=rwc".into(),
            auth_addr: "127.0.0.1:8080".into(),
            token_issuer: "berth".into(),
            token_service: "container_registry".into(),
            token_ttl: "5m".into(),
            log_format: "text".into(),
        }
    }
}
