//! Who is calling: a `docker login` credential (access, deploy or job token, password) resolved
//! to a user, a deploy token or a running CI job. Secrets are looked up by their SHA-256 digest
//! and the stored digest is compared again in constant time; a blocked user, a revoked or
//! expired token and a finished job all resolve to nothing.

use berth_core::access::{Abilities, TokenScope, scope_cap};
use berth_db::access as q;
use berth_db::entity::{ci_jobs, deploy_tokens, users};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::secrets::{self, DEPLOY_PREFIX, JOB_PREFIX, OAUTH_PREFIX, PAT_PREFIX};

/// The username CI jobs log in with (GitLab's `CI_REGISTRY_USER`).
pub const JOB_LOGIN: &str = "gitlab-ci-token";

/// A resolved credential.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No credential at all.
    Anonymous,
    /// A person or bot, by password or token.
    User(UserCredential),
    /// A deploy token.
    Deploy(deploy_tokens::Model),
    /// A running CI job, acting for the user who started it.
    Job {
        /// The job.
        job: ci_jobs::Model,
        /// Its user.
        user: users::Model,
    },
}

/// A user and what the credential they used lets them do.
#[derive(Debug, Clone)]
pub struct UserCredential {
    /// The user (active).
    pub user: users::Model,
    /// Token scopes (`None`: a password, which has every scope).
    pub scopes: Option<Vec<String>>,
    /// The personal access token used, if any.
    pub pat_id: Option<i64>,
}

impl UserCredential {
    /// The registry abilities the credential allows at most.
    pub fn cap(&self) -> Abilities {
        match &self.scopes {
            None => Abilities::ALL,
            Some(scopes) => scope_cap(&parse_scopes(scopes)),
        }
    }

    /// Does the credential carry `scope` (a password carries all)?
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }

    /// The JWT `auth_type`.
    pub fn auth_type(&self) -> &'static str {
        match (self.pat_id, self.user.bot) {
            (None, _) => "password",
            (Some(_), false) => "personal_access_token",
            (Some(_), true) => "project_access_token",
        }
    }
}

impl Credential {
    /// The JWT `auth_type` claim, in GitLab's spelling.
    pub fn auth_type(&self) -> &'static str {
        match self {
            Credential::Anonymous => "none",
            Credential::User(u) => u.auth_type(),
            Credential::Deploy(_) => "deploy_token",
            Credential::Job { .. } => "build",
        }
    }

    /// The JWT `sub`: the username, absent for anonymous and deploy tokens.
    pub fn subject(&self) -> Option<String> {
        match self {
            Credential::User(u) => Some(u.user.username.clone()),
            Credential::Job { user, .. } => Some(user.username.clone()),
            Credential::Anonymous | Credential::Deploy(_) => None,
        }
    }
}

/// The registry scopes among stored scope names (others, like `read_user`, are ignored).
pub fn parse_scopes(scopes: &[String]) -> Vec<TokenScope> {
    scopes.iter().filter_map(|s| s.parse().ok()).collect()
}

/// Split a stored comma-separated scope list.
pub fn split_scopes(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn live(expires_at: Option<DateTime<Utc>>, revoked: bool, now: DateTime<Utc>) -> bool {
    !revoked && expires_at.is_none_or(|at| at > now)
}

fn active(user: &users::Model) -> bool {
    user.state == "active"
}

/// HTTP Basic credentials at `/jwt/auth`, in GitLab's order: job token (login
/// `gitlab-ci-token`), access token (any login), deploy token (login must match), password.
/// `None`: the credentials are not valid.
pub async fn basic(
    c: &impl ConnectionTrait,
    login: &str,
    password: &str,
    passwords_enabled: bool,
    now: DateTime<Utc>,
) -> Result<Option<Credential>, DbErr> {
    if login == JOB_LOGIN {
        return job(c, password, now).await;
    }
    if password.starts_with(PAT_PREFIX) {
        return Ok(access_token(c, password, now).await?.map(Credential::User));
    }
    if password.starts_with(DEPLOY_PREFIX) {
        let digest = secrets::digest(password);
        return Ok(q::deploy_token(c, &digest)
            .await?
            .filter(|t| secrets::same(&t.token_digest, &digest))
            .filter(|t| secrets::same(&t.username, login))
            .filter(|t| live(t.expires_at, t.revoked, now))
            .map(Credential::Deploy));
    }
    if password.starts_with(JOB_PREFIX) || password.starts_with(OAUTH_PREFIX) {
        return Ok(None);
    }
    if !passwords_enabled {
        return Ok(None);
    }
    let user = q::user_by_login(c, login).await?;
    // Verify even when the user is unknown, so timing does not reveal which names exist.
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = crate::passwords::verify(password.to_owned(), hash).await;
    Ok(user.filter(|u| ok && active(u)).map(|user| {
        Credential::User(UserCredential {
            user,
            scopes: None,
            pat_id: None,
        })
    }))
}

/// The longest a job token lives, finished or not. The stand-in CI API has no per-project
/// job timeout, so a job that is never finished would otherwise hold a live token forever;
/// a day is longer than any CI job GitLab allows by default (1 h) and many times shorter
/// than forever.
pub const JOB_MAX_AGE: chrono::Duration = chrono::Duration::hours(24);

/// A running job's token.
pub async fn job(
    c: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Credential>, DbErr> {
    let digest = secrets::digest(token);
    let Some(job) = q::job(c, &digest)
        .await?
        .filter(|j| secrets::same(&j.token_digest, &digest) && j.status == "running")
        .filter(|j| j.created_at + JOB_MAX_AGE > now)
    else {
        return Ok(None);
    };
    Ok(berth_db::users::by_id(c, job.user_id)
        .await?
        .filter(active)
        .map(|user| Credential::Job { job, user }))
}

/// A personal, project or group access token (`bpat-`), or an API token from
/// `/oauth/token` (`boat-`), as the user it belongs to.
pub async fn access_token(
    c: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<UserCredential>, DbErr> {
    let digest = secrets::digest(token);
    let (user_id, scopes, pat_id) = if token.starts_with(PAT_PREFIX) {
        match q::personal_access_token(c, &digest).await? {
            Some(t)
                if secrets::same(&t.token_digest, &digest)
                    && live(t.expires_at, t.revoked, now) =>
            {
                (t.user_id, split_scopes(&t.scopes), Some(t.id))
            }
            _ => return Ok(None),
        }
    } else if token.starts_with(OAUTH_PREFIX) {
        match q::oauth_access_token(c, &digest).await? {
            Some(t)
                if secrets::same(&t.token_digest, &digest)
                    && live(Some(t.expires_at), t.revoked, now) =>
            {
                (t.user_id, split_scopes(&t.scopes), None)
            }
            _ => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    Ok(berth_db::users::by_id(c, user_id)
        .await?
        .filter(active)
        .map(|user| UserCredential {
            user,
            scopes: Some(scopes),
            pat_id,
        }))
}
