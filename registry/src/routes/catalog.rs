//! `GET /v2/_catalog`: repository names, paginated; needs `registry:catalog:*`.

use axum::response::{IntoResponse, Response};
use berth_core::scope::Scope;

use super::Request;
use crate::error::Result;
use crate::state::AppState;

/// Page size when the client gives none.
const DEFAULT_PAGE: u64 = 100;
/// Largest page (Distribution's `catalog.maxentries`, the CVE-2023-2253 fix).
const MAX_PAGE: u64 = 1000;

/// `GET /v2/_catalog?n=&last=`
pub async fn get_catalog(state: &AppState, req: &Request) -> Result<Response> {
    let scope = [Scope::catalog()];
    crate::auth::authorize_with(state, &req.headers, &scope, &scope).await?;
    let n = super::tags::page_size(req, DEFAULT_PAGE, MAX_PAGE)?;
    let last = req.param("last");
    let names = berth_db::repositories::list_names(&state.db.read, last.as_deref(), n).await?;
    let link = super::tags::next_link("/v2/_catalog", n, &names);
    let body = serde_json::json!({ "repositories": names });
    let mut resp = axum::Json(body).into_response();
    if let Some(link) = link {
        resp.headers_mut().insert("link", link);
    }
    Ok(resp)
}
