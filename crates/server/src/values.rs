//! Typed config values every binary shares: the database URL, whose password never shows in
//! `Debug` or `Display` (so neither a `{:?}` of a config nor a log line can leak it), the log
//! format, and humantime durations parsed when the config is loaded.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// `sqlite://…` or `postgres://user:password@host/db`. The password (in the authority or as
/// a `password=` query parameter) is a secret: formatting shows `***` in its place, and only
/// [`DatabaseUrl::expose_secret`] gives the full URL, to connect with.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// The full URL, password included: for connecting, never for printing.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.expose_secret())
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        DatabaseUrl(SecretString::from(url))
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(SecretString::from(url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(DatabaseUrl::from)
    }
}

/// `url` with the password of its authority (`user:password@`) and the value of any
/// `password`/`sslpassword` query parameter replaced by `***`.
fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            // The last `@` ends the user info: a password may itself contain `@`.
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                Some((k, _)) if k.eq_ignore_ascii_case("sslpassword") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for collectors.
    Json,
}

impl LogFormat {
    /// Whether lines are JSON.
    pub fn is_json(self) -> bool {
        self == LogFormat::Json
    }
}

/// Deserialize a humantime duration (`24h`, `2s`, `500ms`) from its text, so a config holds
/// a [`Duration`] and a bad value fails at load with the key's name.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_hides_its_password() {
        let cases = [
            (
                "postgres://berth:hunter2@db.internal:5432/berth",
                "postgres://berth:***@db.internal:5432/berth",
            ),
            (
                "postgres://berth:p@ss@db/berth?sslmode=require",
                "postgres://berth:***@db/berth?sslmode=require",
            ),
            (
                "postgres://db/berth?user=berth&password=hunter2",
                "postgres://db/berth?user=berth&password=***",
            ),
            ("postgres://berth@db/berth", "postgres://berth@db/berth"),
            (
                "sqlite://data/berth.db?mode=rwc",
                "sqlite://data/berth.db?mode=rwc",
            ),
        ];
        for (url, shown) in cases {
            let u = DatabaseUrl::from(url);
            assert_eq!(u.to_string(), shown);
            assert_eq!(format!("{u:?}"), format!("DatabaseUrl({shown:?})"));
            assert_eq!(u.expose_secret(), url);
        }
    }

    #[test]
    fn durations_and_log_formats_parse_at_load() {
        #[derive(Deserialize)]
        struct C {
            #[serde(deserialize_with = "duration")]
            d: Duration,
            f: LogFormat,
        }
        let c: C = toml::from_str("d = \"1m 30s\"\nf = \"json\"").unwrap();
        assert_eq!(c.d, Duration::from_secs(90));
        assert_eq!(c.f, LogFormat::Json);
        assert!(toml::from_str::<C>("d = \"soon\"\nf = \"json\"").is_err());
        assert!(toml::from_str::<C>("d = \"1s\"\nf = \"xml\"").is_err());
    }
}
