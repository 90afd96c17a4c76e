//! The auth service's configuration: one TOML file whose every key can be overridden by
//! `BERTH_<KEY>` (the README's table).

use secrecy::SecretString;
use serde::Deserialize;

use berth_server::de::flexible;

/// Auth settings. Keys are the environment names without `BERTH_`, lowercased.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://…` or `postgres://…` (the same database as the registry).
    pub database_url: String,
    /// Listen address.
    pub auth_addr: String,
    /// Public base URL of this service (API links, pagination headers).
    pub auth_url: String,
    /// Public base URL of the registry (`CI_REGISTRY`, repository `location`s).
    pub registry_url: String,
    /// `iss` of issued tokens.
    pub token_issuer: String,
    /// `aud` of issued tokens (the registry's service name).
    pub token_service: String,
    /// Token lifetime (humantime). A retired key stays published this long (plus leeway).
    pub token_ttl: String,
    /// How long a rotated-in key is published before it signs (humantime; keep it above the
    /// registries' 10 s JWKS refetch interval).
    pub key_publish_delay: String,
    /// Lifetime of registry refresh tokens (Docker's OAuth2 form, `access_type=offline`).
    pub refresh_token_ttl: String,
    /// Password of the bootstrap admin `root`, used only when `root` is first created.
    pub root_password: Option<SecretString>,
    /// Whether `docker login` and `/oauth/token` accept passwords (tokens always work).
    #[serde(deserialize_with = "flexible")]
    pub password_authentication_enabled: bool,
    /// Failed Basic logins allowed per (address, username) within the window.
    #[serde(deserialize_with = "flexible")]
    pub auth_failures_per_user: u32,
    /// Failed Basic logins allowed per address within the window, whatever the username.
    #[serde(deserialize_with = "flexible")]
    pub auth_failures_per_address: u32,
    /// The rate-limit window (humantime).
    pub auth_failure_window: String,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    #[serde(deserialize_with = "flexible")]
    pub trust_forwarded_for: bool,
    /// Delay before GC reviews a manifest a tag deletion left possibly untagged (humantime;
    /// the registry's key of the same name, keep them equal).
    pub gc_review_delay: String,
    /// `text` or `json` logs.
    pub log_format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/berth.db?mode=rwc".into(),
            auth_addr: "127.0.0.1:8080".into(),
            auth_url: "http://127.0.0.1:8080".into(),
            registry_url: "http://127.0.0.1:5000".into(),
            token_issuer: "berth".into(),
            token_service: "container_registry".into(),
            token_ttl: "5m".into(),
            key_publish_delay: "30s".into(),
            refresh_token_ttl: "30d".into(),
            root_password: None,
            password_authentication_enabled: true,
            auth_failures_per_user: 10,
            auth_failures_per_address: 50,
            auth_failure_window: "1m".into(),
            trust_forwarded_for: false,
            gc_review_delay: "24h".into(),
            log_format: "text".into(),
        }
    }
}

impl Config {
    /// The registry's host (and port) as clients name it: `CI_REGISTRY`, image paths.
    pub fn registry_host(&self) -> &str {
        let url = self.registry_url.trim_end_matches('/');
        url.split_once("://").map_or(url, |(_, rest)| rest)
    }
}
