//! `GET /v2/`: the API version check, which any valid token passes.

use axum::response::{IntoResponse, Response};

use super::Request;
use crate::error::Result;
use crate::state::AppState;

/// `GET /v2/`
pub async fn get_base(state: &AppState, req: &Request) -> Result<Response> {
    crate::auth::authorize_with(state, &req.headers, &[], &[]).await?;
    Ok(([("content-type", "application/json")], "{}").into_response())
}
