//! The Docker token endpoint: `GET /jwt/auth` (HTTP Basic or anonymous, as `docker login`
//! and every pull/push send it) and `POST /jwt/auth` (Docker's OAuth2 form, with refresh
//! tokens for `access_type=offline`). Answers as GitLab does: 200 with a JWT
//! whose refused actions are silently dropped, 401 `UNAUTHORIZED` for bad credentials, 403
//! `DENIED` for a credential with no registry ability, 429 when failed logins pile up.
//!
//! Cost bounds: a request may ask for at most
//! [`MAX_REQUESTED_SCOPES`](berth_core::scope::MAX_REQUESTED_SCOPES) scopes and a token is
//! at most [`MAX_TOKEN_BYTES`]; past either the request is refused whole with a 400 naming
//! the limit (in the `errors` format for GET, OAuth2's `invalid_scope` for the POST form),
//! rather than answered with a token silently missing some scopes, which would only fail
//! later at the registry with a less helpful `DENIED`. The scope count is checked before
//! the credentials, so an oversized request costs no password hash or database read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_core::ErrorCode;
use berth_core::scope::{Scope, parse_requested};
use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde_json::json;

use crate::grants;
use crate::identity::{self, Credential, JOB_LOGIN};
use crate::refresh;
use crate::state::AppState;

/// The `/jwt/auth` routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/jwt/auth", get(get_token).post(post_token))
}

/// What went wrong, in the registry's error format.
#[derive(Debug)]
pub enum TokenError {
    /// 401: the credentials are not valid.
    Unauthorized,
    /// 403: valid, but no registry ability at all (or anonymous with nothing granted).
    Denied,
    /// 429: too many failed logins.
    Limited(u64),
    /// 404: a service other than the registry's.
    UnknownService,
    /// 400: a malformed OAuth2 form.
    BadRequest(&'static str),
    /// 400: more scopes than a request may ask for, or a token over [`MAX_TOKEN_BYTES`]
    /// (the `errors` format of `GET /jwt/auth`).
    TooMuch(String),
    /// 400: the same, answered to the OAuth2 form (`invalid_scope`).
    InvalidScope(String),
    /// 500, logged here.
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for TokenError {
    fn from(e: E) -> Self {
        TokenError::Internal(e.into())
    }
}

fn errors(code: &str, message: &str) -> serde_json::Value {
    json!({ "errors": [{ "code": code, "message": message }] })
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        match self {
            TokenError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"Berth\"")],
                axum::Json(errors(
                    ErrorCode::Unauthorized.as_str(),
                    "HTTP Basic: Access denied. If a password was provided for Git authentication, \
                     the password was incorrect or you're required to use a token instead of a password.",
                )),
            )
                .into_response(),
            TokenError::Denied => (
                StatusCode::FORBIDDEN,
                axum::Json(errors(ErrorCode::Denied.as_str(), "access forbidden")),
            )
                .into_response(),
            TokenError::Limited(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                axum::Json(errors(
                    ErrorCode::TooManyRequests.as_str(),
                    &format!("too many failed logins; retry in {secs} s"),
                )),
            )
                .into_response(),
            TokenError::UnknownService => (
                StatusCode::NOT_FOUND,
                axum::Json(errors("UNAVAILABLE", "unknown service")),
            )
                .into_response(),
            TokenError::BadRequest(msg) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "invalid_request", "error_description": msg })),
            )
                .into_response(),
            TokenError::TooMuch(msg) => (
                StatusCode::BAD_REQUEST,
                axum::Json(errors(ErrorCode::Unsupported.as_str(), &msg)),
            )
                .into_response(),
            TokenError::InvalidScope(msg) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "invalid_scope", "error_description": msg })),
            )
                .into_response(),
            TokenError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "token request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(errors("UNKNOWN", "internal error")),
                )
                    .into_response()
            }
        }
    }
}

/// Largest token issued, in bytes. Ordinary tokens are under 2 KiB; the scope cap, the
/// 255-character names and the bounded immutable-tag patterns keep every token below it, so
/// this is the backstop that keeps a token usable in an `Authorization` header should any
/// of those bounds grow.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// Refuse a token larger than [`MAX_TOKEN_BYTES`].
fn check_token_size(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooMuch(format!(
            "the token for these scopes would be {} bytes, more than the {MAX_TOKEN_BYTES} a token may be; ask for fewer scopes",
            token.len()
        )));
    }
    Ok(())
}

/// The 200 answer.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The JWT (Docker's field).
    pub token: String,
    /// The same JWT (OAuth2's field).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// RFC 3339.
    pub issued_at: String,
    /// For `access_type=offline` OAuth2 requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes, space-separated (OAuth2 form only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The client's address: the socket peer, or — when configured to sit behind a trusted
/// proxy — the last `X-Forwarded-For` hop, the one that proxy appended. Earlier hops are
/// written by the client and would let it pick a fresh address per login attempt.
pub fn client_addr(state: &AppState, req: &Request) -> IpAddr {
    if state.cfg.trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|v| v.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip())
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (login, password) = decoded.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

fn check_service(state: &AppState, service: Option<&str>) -> Result<(), TokenError> {
    match service {
        Some(s) if s == state.cfg.token_service => Ok(()),
        _ => Err(TokenError::UnknownService),
    }
}

/// Check a login under the rate limits; failures count toward them.
pub async fn login(
    state: &AppState,
    addr: IpAddr,
    username: &str,
    password: &str,
) -> Result<Credential, TokenError> {
    // Job tokens are exempt, as in GitLab: a CI fleet behind one address must not lock
    // itself out, and job tokens are random and short-lived.
    let limited = username != JOB_LOGIN;
    let is_password = !password.starts_with(crate::secrets::PAT_PREFIX)
        && !password.starts_with(crate::secrets::DEPLOY_PREFIX);
    if limited {
        state
            .limiter
            .check(addr, username, is_password)
            .map_err(|l| TokenError::Limited(l.retry_after))?;
    }
    let cred = identity::basic(
        &state.db.read,
        username,
        password,
        state.cfg.password_authentication_enabled,
        Utc::now(),
    )
    .await?;
    match cred {
        Some(c) => Ok(c),
        None => {
            if limited {
                state.limiter.failed(addr, username);
            }
            metrics::counter!("berth_auth_failed_logins_total").increment(1);
            tracing::info!(client.address = %addr, "login failed");
            Err(TokenError::Unauthorized)
        }
    }
}

/// Grant `scopes` to `cred` and sign.
pub async fn issue(
    state: &AppState,
    cred: &Credential,
    scopes: &[Scope],
) -> Result<(TokenResponse, Vec<String>), TokenError> {
    if !crate::authz::has_registry_ability(cred) {
        return Err(TokenError::Denied);
    }
    if scopes.is_empty() && matches!(cred, Credential::Anonymous) {
        return Err(TokenError::Denied);
    }
    let access = grants::grant(&state.db.read, cred, scopes, Utc::now()).await?;
    if access.is_empty() && matches!(cred, Credential::Anonymous) {
        // GitLab: an anonymous request granted nothing is refused outright.
        return Err(TokenError::Denied);
    }
    let granted: Vec<String> = access
        .iter()
        .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
        .collect();
    let issuer = state.signer.get().await?;
    let (token, claims) = issuer.issue(cred.subject(), Some(cred.auth_type().into()), access)?;
    check_token_size(&token)?;
    metrics::counter!("berth_tokens_issued_total", "auth_type" => cred.auth_type()).increment(1);
    tracing::info!(
        auth.type = cred.auth_type(),
        scopes.requested = scopes.len(),
        scopes.granted = granted.len(),
        "token issued"
    );
    let issued_at = Utc
        .timestamp_opt(claims.iat, 0)
        .single()
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok((
        TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: claims.exp - claims.iat,
            issued_at,
            refresh_token: None,
            scope: None,
        },
        granted,
    ))
}

/// `GET /jwt/auth?service=…&scope=…[&scope=…]` with optional Basic credentials.
#[tracing::instrument(skip_all, fields(client.address))]
async fn get_token(State(state): State<AppState>, req: Request) -> Result<Response, TokenError> {
    let addr = client_addr(&state, &req);
    tracing::Span::current().record("client.address", tracing::field::display(addr));
    let query = req.uri().query().unwrap_or("");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let service = pairs
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.as_str());
    check_service(&state, service)?;
    let scopes = parse_requested(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    )
    .map_err(|e| TokenError::TooMuch(e.to_string()))?;
    let cred = match basic(req.headers()) {
        Some((user, password)) => login(&state, addr, &user, &password).await?,
        None if req.headers().contains_key(header::AUTHORIZATION) => {
            return Err(TokenError::Unauthorized);
        }
        None => Credential::Anonymous,
    };
    let (body, _) = issue(&state, &cred, &scopes).await?;
    Ok(axum::Json(body).into_response())
}

/// `POST /jwt/auth` with Docker's OAuth2 form: `grant_type=password` (username, password) or
/// `refresh_token`, `service`, `scope` (space-separated), `access_type=offline` for a
/// refresh token.
#[tracing::instrument(skip_all, fields(client.address))]
async fn post_token(State(state): State<AppState>, req: Request) -> Result<Response, TokenError> {
    let addr = client_addr(&state, &req);
    tracing::Span::current().record("client.address", tracing::field::display(addr));
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| TokenError::BadRequest("form too large"))?;
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    check_service(&state, field("service"))?;
    let scopes = parse_requested(
        form.iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    )
    .map_err(|e| TokenError::InvalidScope(e.to_string()))?;
    let offline = field("access_type") == Some("offline");
    let (cred, refresh_token) = match field("grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (field("username"), field("password")) else {
                return Err(TokenError::BadRequest("username and password are required"));
            };
            let cred = login(&state, addr, user, password).await?;
            let refresh_token = if offline {
                refresh::create(&state, &cred, field("service").unwrap_or_default()).await?
            } else {
                None
            };
            (cred, refresh_token)
        }
        Some("refresh_token") => {
            let Some(token) = field("refresh_token") else {
                return Err(TokenError::BadRequest("refresh_token is required"));
            };
            let cred = refresh::redeem(&state, token, field("service").unwrap_or_default())
                .await?
                .ok_or(TokenError::Unauthorized)?;
            // The same refresh token keeps working until it expires or its credential dies.
            (cred, Some(token.to_owned()))
        }
        _ => {
            return Err(TokenError::BadRequest(
                "grant_type must be password or refresh_token",
            ));
        }
    };
    let (mut body, granted) = issue(&state, &cred, &scopes).await.map_err(|e| match e {
        TokenError::TooMuch(msg) => TokenError::InvalidScope(msg),
        other => other,
    })?;
    body.refresh_token = refresh_token;
    body.scope = Some(granted.join(" "));
    Ok(axum::Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_over_the_size_limit_is_refused_with_a_400() {
        assert!(check_token_size(&"a".repeat(MAX_TOKEN_BYTES)).is_ok());
        let err = check_token_size(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err();
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
}
