//! How long a connection may take over each part of a request, and how many connections
//! a process serves at once: [`ConnectionLimits`] for [`crate::serve()`], read from the
//! `http_*` keys every binary's configuration shares ([`HttpSettings`]).

use std::time::Duration;

use anyhow::Context as _;

/// The bounds [`crate::serve()`] holds every connection to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time from a request's first byte until its head is complete.
    pub header_timeout: Duration,
    /// Longest pause between two pieces of a request body.
    pub body_timeout: Duration,
    /// Longest time a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once; more are refused with a 503.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The settings behind [`ConnectionLimits`], as every binary's config file and environment
/// spell them (`http_header_timeout` / `BERTH_HTTP_HEADER_TIMEOUT`, ...). Flatten it into a
/// binary's config struct.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// [`ConnectionLimits::header_timeout`] (humantime).
    pub http_header_timeout: String,
    /// [`ConnectionLimits::body_timeout`] (humantime).
    pub http_body_timeout: String,
    /// [`ConnectionLimits::idle_timeout`] (humantime).
    pub http_idle_timeout: String,
    /// [`ConnectionLimits::max_connections`].
    #[serde(deserialize_with = "crate::de::flexible")]
    pub http_max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        let d = ConnectionLimits::default();
        let text = |t: Duration| humantime::format_duration(t).to_string();
        HttpSettings {
            http_header_timeout: text(d.header_timeout),
            http_body_timeout: text(d.body_timeout),
            http_idle_timeout: text(d.idle_timeout),
            http_max_connections: d.max_connections,
        }
    }
}

impl HttpSettings {
    /// The limits these settings name; every timeout and the limit must be above zero (a
    /// zero would close every connection at once or refuse them all).
    pub fn limits(&self) -> anyhow::Result<ConnectionLimits> {
        let positive = |key: &str, value: &str| -> anyhow::Result<Duration> {
            let d = crate::parse_duration(value)
                .with_context(|| format!("BERTH_{}", key.to_ascii_uppercase()))?;
            anyhow::ensure!(
                !d.is_zero(),
                "BERTH_{} must be greater than zero",
                key.to_ascii_uppercase()
            );
            Ok(d)
        };
        anyhow::ensure!(
            self.http_max_connections > 0,
            "BERTH_HTTP_MAX_CONNECTIONS must be greater than zero"
        );
        Ok(ConnectionLimits {
            header_timeout: positive("http_header_timeout", &self.http_header_timeout)?,
            body_timeout: positive("http_body_timeout", &self.http_body_timeout)?,
            idle_timeout: positive("http_idle_timeout", &self.http_idle_timeout)?,
            max_connections: self.http_max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary's config as the binaries declare it: the settings flattened in.
    #[derive(Debug, serde::Deserialize)]
    struct Outer {
        #[serde(flatten)]
        http: HttpSettings,
    }

    fn parse(text: &str) -> anyhow::Result<ConnectionLimits> {
        let outer: Outer = toml::from_str(text)?;
        outer.http.limits()
    }

    #[test]
    fn defaults_file_values_and_environment_strings() {
        assert_eq!(parse("").ok(), Some(ConnectionLimits::default()));
        // A TOML integer, and a string as the environment gives it.
        assert_eq!(
            parse("http_max_connections = 7")
                .map(|l| l.max_connections)
                .ok(),
            Some(7)
        );
        let l = parse("http_max_connections = \"9\"\nhttp_body_timeout = \"2m\"").ok();
        assert_eq!(
            l.map(|l| (l.max_connections, l.body_timeout)),
            Some((9, Duration::from_secs(120)))
        );
    }

    #[test]
    fn zero_and_nonsense_are_refused() {
        for bad in [
            "http_max_connections = 0",
            "http_header_timeout = \"0s\"",
            "http_idle_timeout = \"soon\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
