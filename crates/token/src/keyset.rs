//! The verifier's trusted keys by kid: a static set, or a JWKS endpoint fetched lazily
//! and refetched (rate limited) when a token names a kid we do not know.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::jwk::parse_jwks;
use crate::keys::PublicKey;
use crate::verifier::{KeySource, VerifyError};

/// Minimum spacing between JWKS fetches, so tokens with made-up kids cannot make the
/// registry hammer the auth service.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Upper bound on a whole JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on a JWKS document; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Trusted keys plus, for a JWKS source, how to refresh them.
pub(crate) struct KeySet {
    keys: RwLock<HashMap<String, PublicKey>>,
    remote: Option<Remote>,
}

struct Remote {
    url: String,
    client: reqwest::Client,
    refetch_interval: Duration,
    /// Held across a fetch so concurrent misses wait for one request instead of each
    /// starting their own.
    state: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// Why the last attempt failed, if it did; reported while rate limited.
    last_error: Option<String>,
}

impl KeySet {
    pub(crate) fn new(source: KeySource) -> Self {
        match source {
            KeySource::Static(keys) => Self {
                keys: RwLock::new(by_kid(keys)),
                remote: None,
            },
            KeySource::Jwks { url } => Self {
                keys: RwLock::new(HashMap::new()),
                remote: Some(Remote {
                    url,
                    // Building a client only fails if the TLS backend cannot initialise;
                    // this build has none, so the default client is an exact fallback.
                    client: reqwest::Client::builder()
                        .timeout(FETCH_TIMEOUT)
                        .build()
                        .unwrap_or_default(),
                    refetch_interval: REFETCH_INTERVAL,
                    state: tokio::sync::Mutex::new(FetchState::default()),
                }),
            },
        }
    }

    #[cfg(test)]
    pub(crate) fn set_refetch_interval(&mut self, interval: Duration) {
        if let Some(remote) = self.remote.as_mut() {
            remote.refetch_interval = interval;
        }
    }

    fn lookup(&self, kid: &str) -> Option<PublicKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(kid).cloned()
    }

    /// The trusted key for `kid`, fetching the JWKS if needed and allowed.
    pub(crate) async fn get(&self, kid: &str) -> Result<PublicKey, VerifyError> {
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        let Some(remote) = &self.remote else {
            return Err(VerifyError::UnknownKey);
        };
        let mut state = remote.state.lock().await;
        // Another task may have refreshed the set while we waited for the lock.
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < remote.refetch_interval)
        {
            return Err(match &state.last_error {
                Some(e) => VerifyError::KeySource(e.clone()),
                None => VerifyError::UnknownKey,
            });
        }
        state.last_attempt = Some(Instant::now());
        match remote.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %remote.url, keys = keys.len(), "loaded JWKS");
                state.last_error = None;
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = by_kid(keys);
            }
            Err(e) => {
                state.last_error = Some(e.clone());
                return Err(VerifyError::KeySource(e));
            }
        }
        self.lookup(kid).ok_or(VerifyError::UnknownKey)
    }
}

impl Remote {
    /// Fetches and parses the JWKS. The error string is safe to show a client (no URL or
    /// internal detail); the full story goes to the log.
    async fn fetch(&self) -> Result<Vec<PublicKey>, String> {
        let mut resp = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(url = %self.url, error = %e, "JWKS request failed");
                "JWKS request failed".to_owned()
            })?;
        let status = resp.status();
        if !status.is_success() {
            tracing::warn!(url = %self.url, %status, "JWKS endpoint returned an error");
            return Err(format!("JWKS endpoint returned HTTP {}", status.as_u16()));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        tracing::warn!(url = %self.url, "JWKS document too large");
                        return Err("JWKS document too large".to_owned());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %e, "reading JWKS body failed");
                    return Err("JWKS request failed".to_owned());
                }
            }
        }
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            tracing::warn!(url = %self.url, error = %e, "JWKS is not JSON");
            "JWKS document is not valid JSON".to_owned()
        })?;
        let (keys, skipped) = parse_jwks(&doc).map_err(|e| {
            tracing::warn!(url = %self.url, error = %e, "JWKS document invalid");
            "JWKS document is invalid".to_owned()
        })?;
        for e in &skipped {
            tracing::warn!(url = %self.url, error = %e, "skipping JWKS entry");
        }
        // An endpoint serving nothing usable is treated as broken rather than as
        // "revoke every key", so a bad deploy of the auth service keeps the old set.
        if keys.is_empty() {
            return Err("JWKS document has no usable keys".to_owned());
        }
        Ok(keys)
    }
}

fn by_kid(keys: Vec<PublicKey>) -> HashMap<String, PublicKey> {
    keys.into_iter().map(|k| (k.kid().to_owned(), k)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::jwk::jwks;
    use crate::{Issuer, SigningKey, Verifier};

    /// A minimal HTTP/1.1 server answering every request with the current (status, body).
    struct JwksServer {
        url: String,
        hits: Arc<AtomicUsize>,
        response: Arc<Mutex<(u16, String)>>,
    }

    impl JwksServer {
        async fn start(body: String) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicUsize::new(0));
            let response = Arc::new(Mutex::new((200, body)));
            let (h, r) = (hits.clone(), response.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = r.lock().unwrap().clone();
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                    let _ = sock.shutdown().await;
                }
            });
            Self {
                url,
                hits,
                response,
            }
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        fn set(&self, status: u16, body: String) {
            *self.response.lock().unwrap() = (status, body);
        }
    }

    fn issuer() -> Issuer {
        Issuer::new(
            SigningKey::generate(),
            "auth",
            "reg",
            Duration::from_secs(300),
        )
    }

    fn jwks_verifier(url: &str) -> Verifier {
        Verifier::new(
            KeySource::Jwks {
                url: url.to_owned(),
            },
            "auth",
            "reg",
        )
    }

    #[tokio::test]
    async fn fetches_lazily_and_rate_limits_unknown_kids() {
        let known = issuer();
        let server = JwksServer::start(jwks(&[known.public_key()]).to_string()).await;
        let verifier = jwks_verifier(&server.url);
        assert_eq!(server.hits(), 0, "no fetch before the first verify");

        let (token, _) = known.issue(None, None, vec![]).unwrap();
        assert!(verifier.verify(&token).await.is_ok());
        assert_eq!(server.hits(), 1);

        let (stranger, _) = issuer().issue(None, None, vec![]).unwrap();
        for _ in 0..5 {
            assert_eq!(
                verifier.verify(&stranger).await,
                Err(VerifyError::UnknownKey)
            );
        }
        assert_eq!(server.hits(), 1, "refetch suppressed within 10 s");
    }

    #[tokio::test]
    async fn unknown_kid_refetch_picks_up_rotated_key() {
        let old = issuer();
        let server = JwksServer::start(jwks(&[old.public_key()]).to_string()).await;
        let mut verifier = jwks_verifier(&server.url);
        verifier.keys.set_refetch_interval(Duration::ZERO);
        let (old_token, _) = old.issue(None, None, vec![]).unwrap();
        assert!(verifier.verify(&old_token).await.is_ok());

        let new = issuer();
        server.set(200, jwks(&[new.public_key()]).to_string());
        let (new_token, _) = new.issue(None, None, vec![]).unwrap();
        assert!(verifier.verify(&new_token).await.is_ok());
        assert_eq!(server.hits(), 2);
        // The old token was verified before rotation and stays cached until its exp.
        assert!(verifier.verify(&old_token).await.is_ok());
    }

    #[tokio::test]
    async fn forged_kid_in_jwks_is_not_trusted() {
        // The JWKS claims the attacker's key has the legitimate kid; it must be skipped.
        let legit = issuer();
        let attacker = issuer();
        let mut forged = attacker.public_key().to_jwk();
        forged["kid"] = legit.public_key().kid().into();
        let doc = serde_json::json!({"keys": [forged, legit.public_key().to_jwk()]});
        let server = JwksServer::start(doc.to_string()).await;
        let verifier = jwks_verifier(&server.url);

        // The attacker's key was dropped, so their own kid is unknown ...
        let (token, _) = attacker.issue(None, None, vec![]).unwrap();
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
        // ... and re-labelling their token with the legitimate kid selects the legitimate
        // key, under which the attacker's signature is invalid.
        let mut parts = token.split('.');
        let (_, payload, sig) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": legit.public_key().kid()})
                .to_string(),
        );
        let relabelled = format!("{header}.{payload}.{sig}");
        assert_eq!(
            verifier.verify(&relabelled).await,
            Err(VerifyError::BadSignature)
        );
        let (good, _) = legit.issue(None, None, vec![]).unwrap();
        assert!(verifier.verify(&good).await.is_ok());
    }

    #[tokio::test]
    async fn endpoint_failures_are_key_source_errors() {
        let key = issuer();
        let server = JwksServer::start("oops".into()).await;
        server.set(500, "oops".into());
        let verifier = jwks_verifier(&server.url);
        let (token, _) = key.issue(None, None, vec![]).unwrap();
        let err = verifier.verify(&token).await.unwrap_err();
        assert_eq!(
            err,
            VerifyError::KeySource("JWKS endpoint returned HTTP 500".into())
        );
        assert!(!err.to_string().contains(&server.url), "URL not exposed");
        // Within the rate-limit window the failure is reported again, without a request.
        assert!(matches!(
            verifier.verify(&token).await,
            Err(VerifyError::KeySource(_))
        ));
        assert_eq!(server.hits(), 1);

        for body in ["not json", "{}", "{\"keys\": []}"] {
            let server = JwksServer::start(body.into()).await;
            let verifier = jwks_verifier(&server.url);
            let err = verifier.verify(&token).await.unwrap_err();
            assert!(matches!(err, VerifyError::KeySource(_)), "{body}: {err:?}");
        }
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_key_source_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        drop(listener);
        let (token, _) = issuer().issue(None, None, vec![]).unwrap();
        let err = jwks_verifier(&url).verify(&token).await.unwrap_err();
        assert_eq!(err, VerifyError::KeySource("JWKS request failed".into()));
    }
}
