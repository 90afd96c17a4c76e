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

/// `n` from the query (default `default`, clamped to `max`). Anything but decimal digits
/// (a sign, a fraction, a word, an empty value) is `PAGINATION_NUMBER_INVALID` (400), as in
/// Distribution; a number too large for 64 bits is still a number and is clamped like any
/// other above `max`.
pub fn page_size(req: &Request, default: u64, max: u64) -> Result<u64> {
    match req.param("n") {
        None => Ok(default),
        Some(v) => parse_page_size(&v, max).ok_or_else(|| {
            RegistryError::new(ErrorCode::PaginationNumberInvalid)
                .message(format!("n must be a non-negative integer, not {v:?}"))
        }),
    }
}

/// `v` as a page size clamped to `max`; `None` unless it is a non-empty run of digits.
fn parse_page_size(v: &str, max: u64) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Only digits: the parse fails only on overflow, which is above `max` anyway.
    Some(v.parse::<u64>().map_or(max, |n| n.min(max)))
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

#[cfg(test)]
mod tests {
    use super::parse_page_size;

    #[test]
    fn page_sizes() {
        assert_eq!(parse_page_size("0", 100), Some(0));
        assert_eq!(parse_page_size("7", 100), Some(7));
        assert_eq!(parse_page_size("1000", 100), Some(100));
        assert_eq!(parse_page_size("99999999999999999999999", 100), Some(100));
        for bad in ["", "-1", "+1", "1.5", "abc", " 1", "1e3", "0x10"] {
            assert_eq!(parse_page_size(bad, 100), None, "{bad:?}");
        }
    }
}
