//! Request body caps: each endpoint reads at most what it needs, so a client cannot make
//! berth-auth hold large bodies (200 half-sent 2 MiB bodies took it from 36 MB to 455 MB
//! when every endpoint accepted axum's default 2 MiB).
//!
//! - `GET`/`HEAD`/`OPTIONS`: no body.
//! - `/jwt/auth` and `/oauth/token`: a login form or a refresh token, [`TOKEN_FORM_LIMIT`].
//! - every other endpoint (the `/api/v4` JSON or form bodies, `DELETE` included, since
//!   GitLab's documented calls send e.g. the bulk tag deletion's regexes as a `DELETE`
//!   form body): [`API_BODY_LIMIT`].
//!
//! A declared `Content-Length` over the cap is refused before any byte is read (413); a
//! chunked body is cut off at the cap while it is read, and the endpoint answers 400.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest body of a token request (form fields: grant type, scopes, credentials).
pub const TOKEN_FORM_LIMIT: usize = 8 * 1024;

/// Largest body of an API request.
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// The cap for a request.
pub fn limit_for(method: &Method, path: &str) -> usize {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        0
    } else if path == "/jwt/auth" || path == "/oauth/token" {
        TOKEN_FORM_LIMIT
    } else {
        API_BODY_LIMIT
    }
}

/// Middleware holding every request body to [`limit_for`].
pub async fn limit_body(req: Request, next: Next) -> Response {
    let limit = limit_for(req.method(), req.uri().path());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        let message = if limit == 0 {
            "413 Request Entity Too Large - this endpoint takes no request body".to_owned()
        } else {
            format!("413 Request Entity Too Large - the request body may be at most {limit} bytes")
        };
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            // The rest of the body is never read, so this connection cannot carry another
            // request: say so.
            [(header::CONNECTION, "close")],
            axum::Json(serde_json::json!({ "message": message })),
        )
            .into_response();
    }
    let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_endpoint() {
        assert_eq!(limit_for(&Method::GET, "/api/v4/projects"), 0);
        assert_eq!(limit_for(&Method::HEAD, "/jwt/auth"), 0);
        assert_eq!(limit_for(&Method::POST, "/jwt/auth"), TOKEN_FORM_LIMIT);
        assert_eq!(limit_for(&Method::POST, "/oauth/token"), TOKEN_FORM_LIMIT);
        assert_eq!(limit_for(&Method::POST, "/api/v4/groups"), API_BODY_LIMIT);
        assert_eq!(
            limit_for(
                &Method::DELETE,
                "/api/v4/projects/1/registry/repositories/2/tags"
            ),
            API_BODY_LIMIT
        );
    }
}
