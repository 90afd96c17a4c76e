//! The management API under `/api/v4` (SPEC 5): GitLab's paths, JSON shapes, pagination and
//! errors, so GitLab's clients work against Berth. One module per resource.

pub mod caller;
pub mod error;
pub mod lookup;
pub mod pagination;

use axum::Router;

use crate::state::AppState;

/// Every `/api/v4` route.
pub fn router() -> Router<AppState> {
    Router::new()
}
