//! Who calls the API: `PRIVATE-TOKEN: <token>`, `Authorization: Bearer <token>` (a
//! personal/project/group access token or an `/oauth/token` API token), or `JOB-TOKEN`
//! (a running CI job). Authentication is an extractor; each handler checks authorization.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use berth_db::entity::{ci_jobs, users};
use chrono::Utc;

use super::error::ApiError;
use crate::identity::{self, Credential, UserCredential};
use crate::state::AppState;

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user and the scopes of the token used.
    pub cred: UserCredential,
    /// Set when the caller authenticated with a CI job token.
    pub job: Option<ci_jobs::Model>,
}

impl Caller {
    /// The user.
    pub fn user(&self) -> &users::Model {
        &self.cred.user
    }

    /// Instance administrator.
    pub fn is_admin(&self) -> bool {
        self.cred.user.admin && self.job.is_none()
    }

    /// Reads need `api` or `read_api` (GitLab's scopes); a job token reads only where a
    /// handler allows it explicitly.
    pub fn require_read(&self) -> Result<(), ApiError> {
        if self.job.is_none() && (self.cred.has_scope("api") || self.cred.has_scope("read_api")) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Writes need `api`.
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.job.is_none() && self.cred.has_scope("api") {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Admin-only endpoints (with `api` scope).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require_write()?;
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    let now = Utc::now();
    if let Some(token) = header(parts, "job-token") {
        return match identity::job(&state.db.read, token, now).await? {
            Some(Credential::Job { job, user }) => Ok(Some(Caller {
                cred: UserCredential {
                    user,
                    scopes: Some(Vec::new()),
                    pat_id: None,
                },
                job: Some(job),
            })),
            _ => Err(ApiError::Unauthorized),
        };
    }
    let token = header(parts, "private-token").or_else(|| {
        header(parts, "authorization").and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    });
    let Some(token) = token else {
        return Ok(None);
    };
    match identity::access_token(&state.db.read, token.trim(), now).await? {
        Some(cred) => Ok(Some(Caller { cred, job: None })),
        None => Err(ApiError::Unauthorized),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state)
            .await?
            .ok_or(ApiError::Unauthorized)
    }
}

/// A caller who may be anonymous (public listings); a bad token is still a 401.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(MaybeCaller(authenticate(parts, state).await?))
    }
}
