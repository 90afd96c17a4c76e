//! The management API under `/api/v4`: GitLab's v4 paths, JSON shapes, pagination and
//! errors, so GitLab's clients work against Berth. One module per resource.

pub mod access_tokens;
pub mod caller;
pub mod cleanup_preview;
pub mod deploy_tokens;
pub mod error;
pub mod groups;
pub mod jobs;
pub mod lookup;
pub mod members;
pub mod pagination;
pub mod params;
pub mod personal_access_tokens;
pub mod projects;
pub mod registry;
pub mod registry_deletions;
pub mod registry_manifests;
pub mod registry_tags;
pub mod storage;
pub mod tag_rules;
pub mod users;

use axum::http::StatusCode;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// Every `/api/v4` route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(users::routes())
        .merge(personal_access_tokens::routes())
        .merge(access_tokens::routes())
        .merge(members::routes())
        .merge(groups::routes())
        .merge(projects::routes())
        .merge(deploy_tokens::routes())
        .merge(jobs::routes())
        .merge(registry::routes())
        .merge(registry_deletions::routes())
        .merge(registry_manifests::routes())
        .merge(tag_rules::routes())
        .merge(cleanup_preview::routes())
        // The hand-maintained OpenAPI 3.1 description of every route here (no auth).
        .route(
            "/openapi.json",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    include_str!("../../openapi.json"),
                )
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "404 Not Found" })),
            )
        })
}
