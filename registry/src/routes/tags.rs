//! `GET /v2/<name>/tags/list`: tag names in lexical order, paginated with `n`/`last`.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use berth_core::scope::Action;
use berth_core::{ErrorCode, RepoName};

use super::Request;
use crate::error::{RegistryError, Result};
use crate::state::AppState;

/// Largest page of tags per request; without `n` every tag is returned up to this bound.
const MAX_PAGE: u64 = 10_000;

/// `GET /v2/<name>/tags/list?n=&last=`
pub async fn list_tags(state: &AppState, name: &RepoName, req: &Request) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Pull]).await?;
    let repo = super::existing_repository(state, name).await?;
    let n = page_size(req, MAX_PAGE, MAX_PAGE)?;
    let last = req.param("last");
    let tags = berth_db::tags::list_names(&state.db.read, repo.id, last.as_deref(), n).await?;
    let link = if req.param("n").is_some() {
        next_link(&format!("/v2/{name}/tags/list"), n, &tags)
    } else {
        None
    };
    let mut resp =
        axum::Json(serde_json::json!({ "name": name.as_str(), "tags": tags })).into_response();
    if let Some(link) = link {
        resp.headers_mut().insert("link", link);
    }
    Ok(resp)
}

/// `n` from the query (default `default`, clamped to `max`).
pub fn page_size(req: &Request, default: u64, max: u64) -> Result<u64> {
    match req.param("n") {
        None => Ok(default),
        Some(v) => v.parse::<u64>().map(|n| n.min(max)).map_err(|_| {
            RegistryError::new(ErrorCode::Unsupported).message("n must be a non-negative integer")
        }),
    }
}

/// The RFC 5988 `Link` to the next page, when this page is full.
pub fn next_link(path: &str, n: u64, page: &[String]) -> Option<HeaderValue> {
    if n == 0 || (page.len() as u64) < n {
        return None;
    }
    let last = page.last()?;
    HeaderValue::from_str(&format!(
        "<{path}?n={n}&last={}>; rel=\"next\"",
        encode(last)
    ))
    .ok()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
