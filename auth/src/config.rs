//! The auth service's configuration: one TOML file whose every key can be overridden by
//! `BERTH_<KEY>` (the README's table).

use std::time::Duration;

use berth_server::{DatabaseUrl, LogFormat};
use secrecy::SecretString;
use serde::Deserialize;

use berth_server::de::flexible;

/// Auth settings. Keys are the environment names without `BERTH_`, lowercased.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://…` or `postgres://…` (the same database as the registry); its password
    /// never shows in `Debug` or logs.
    pub database_url: DatabaseUrl,
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
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub token_ttl: Duration,
    /// How long a rotated-in key is published before it signs (humantime; keep it above the
    /// registries' 10 s JWKS refetch interval).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub key_publish_delay: Duration,
    /// Lifetime of registry refresh tokens (Docker's OAuth2 form, `access_type=offline`).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub refresh_token_ttl: Duration,
    /// The longest a personal, project or group access token made through the API may
    /// live (humantime; GitLab's default, 365 days): one created without an expiry gets
    /// this one, a later expiry is refused.
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub max_token_lifetime: Duration,
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
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub auth_failure_window: Duration,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    #[serde(deserialize_with = "flexible")]
    pub trust_forwarded_for: bool,
    /// Delay before GC reviews a manifest a tag deletion left possibly untagged (humantime;
    /// the registry's key of the same name, keep them equal).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub gc_review_delay: Duration,
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
            auth_addr: "127.0.0.1:8080".into(),
            auth_url: "http://127.0.0.1:8080".into(),
            registry_url: "http://127.0.0.1:5000".into(),
            token_issuer: "berth".into(),
            token_service: "container_registry".into(),
            token_ttl: Duration::from_secs(5 * 60),
            key_publish_delay: Duration::from_secs(30),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            max_token_lifetime: Duration::from_secs(365 * 24 * 3600),
            root_password: None,
            password_authentication_enabled: true,
            auth_failures_per_user: 10,
            auth_failures_per_address: 50,
            auth_failure_window: Duration::from_secs(60),
            trust_forwarded_for: false,
            gc_review_delay: Duration::from_secs(24 * 3600),
            http: Default::default(),
            log_format: LogFormat::Text,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_database_password_and_root_password() {
        let cfg = Config {
            database_url: "postgres://berth:db-Secret-42@db.internal/berth".into(),
            root_password: Some(SecretString::from("root-Secret-43")),
            ..Config::default()
        };
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains("db-Secret-42"), "{shown}");
        assert!(!shown.contains("root-Secret-43"), "{shown}");
        assert!(
            shown.contains("postgres://berth:***@db.internal/berth"),
            "{shown}"
        );
    }
}
