//! GitLab's offset pagination: `page` and `per_page` (default 20, at most 100) in, and
//! `X-Page`, `X-Per-Page`, `X-Total`, `X-Total-Pages`, `X-Next-Page`, `X-Prev-Page` and
//! `Link` (`first`, `prev`, `next`, `last`) out.

use axum::http::{HeaderMap, HeaderValue, Uri};
use serde::Deserialize;

/// Default page size.
pub const DEFAULT_PER_PAGE: u64 = 20;
/// Largest page size.
pub const MAX_PER_PAGE: u64 = 100;
/// The largest number of rows a listing skips. Both databases take `OFFSET` as a signed
/// 64-bit integer (the query builder panics on a larger unsigned value), and no listing has
/// that many rows, so a page past it is simply empty, as any page past the last one is.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// `page` and `per_page` query parameters.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PageParams {
    /// 1-based page number.
    pub page: Option<u64>,
    /// Items per page.
    pub per_page: Option<u64>,
}

impl PageParams {
    /// The page, at least 1.
    pub fn page(&self) -> u64 {
        self.page.unwrap_or(1).max(1)
    }

    /// The page size, clamped to 1..=100.
    pub fn per_page(&self) -> u64 {
        self.per_page
            .unwrap_or(DEFAULT_PER_PAGE)
            .clamp(1, MAX_PER_PAGE)
    }

    /// Rows to skip, at most [`MAX_OFFSET`]: `page` comes from the client, so the product
    /// saturates instead of overflowing.
    pub fn offset(&self) -> u64 {
        (self.page() - 1)
            .saturating_mul(self.per_page())
            .min(MAX_OFFSET)
    }

    /// The pagination headers for a listing of `total` items at `base` (the public base URL)
    /// + `uri`'s path and query.
    pub fn headers(&self, base: &str, uri: &Uri, total: u64) -> HeaderMap {
        let page = self.page();
        let per_page = self.per_page();
        let pages = total.div_ceil(per_page).max(1);
        let mut h = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        };
        set("x-page", page.to_string());
        set("x-per-page", per_page.to_string());
        set("x-total", total.to_string());
        set("x-total-pages", pages.to_string());
        set(
            "x-next-page",
            if page < pages {
                page.saturating_add(1).to_string()
            } else {
                String::new()
            },
        );
        set(
            "x-prev-page",
            if page > 1 {
                (page - 1).to_string()
            } else {
                String::new()
            },
        );
        let link =
            |n: u64, rel: &str| format!("<{}>; rel=\"{rel}\"", page_url(base, uri, n, per_page));
        let mut links = Vec::new();
        if page > 1 {
            links.push(link(page - 1, "prev"));
        }
        if page < pages {
            links.push(link(page.saturating_add(1), "next"));
        }
        links.push(link(1, "first"));
        links.push(link(pages, "last"));
        set("link", links.join(", "));
        h
    }
}

/// `uri` with `page` and `per_page` replaced, on the public base URL.
fn page_url(base: &str, uri: &Uri, page: u64, per_page: u64) -> String {
    let mut pairs: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page=") && !p.starts_with("per_page="))
        .map(str::to_owned)
        .collect();
    pairs.push(format!("page={page}"));
    pairs.push(format!("per_page={per_page}"));
    format!(
        "{}{}?{}",
        base.trim_end_matches('/'),
        uri.path(),
        pairs.join("&")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_like_gitlab() {
        let p = PageParams {
            page: Some(2),
            per_page: Some(10),
        };
        let uri: Uri = "/api/v4/projects?search=x&page=2&per_page=10"
            .parse()
            .unwrap();
        let h = p.headers("http://auth", &uri, 25);
        assert_eq!(h["x-total"], "25");
        assert_eq!(h["x-total-pages"], "3");
        assert_eq!(h["x-next-page"], "3");
        assert_eq!(h["x-prev-page"], "1");
        let link = h["link"].to_str().unwrap();
        assert!(
            link.contains(
                "<http://auth/api/v4/projects?search=x&page=3&per_page=10>; rel=\"next\""
            )
        );
        assert!(link.contains("rel=\"last\""));
        assert_eq!(p.offset(), 10);
    }

    #[test]
    fn per_page_is_clamped() {
        let p = PageParams {
            page: Some(0),
            per_page: Some(1000),
        };
        assert_eq!(p.page(), 1);
        assert_eq!(p.per_page(), 100);
    }

    #[test]
    fn huge_pages_saturate_instead_of_overflowing() {
        let uri: Uri = "/api/v4/projects".parse().unwrap();
        for page in [i64::MAX as u64, u64::MAX, (i64::MAX as u64) / 20 + 2] {
            let p = PageParams {
                page: Some(page),
                per_page: Some(20),
            };
            assert_eq!(p.offset(), MAX_OFFSET, "{page}");
            let h = p.headers("http://auth", &uri, 3);
            assert_eq!(h["x-page"], page.to_string().as_str());
            assert_eq!(h["x-next-page"], "");
            assert_eq!(h["x-prev-page"], (page - 1).to_string().as_str());
        }
    }
}
