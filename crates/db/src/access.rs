//! Read-only lookups behind access decisions: the credential a secret digest names, the
//! project a repository path belongs to, a project's namespace chain, a user's effective
//! role, and the job-token allowlist. The auth service combines them with the pure rules
//! of `berth_core::access`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use crate::entity::{
    ci_jobs, deploy_tokens, job_token_allowlist, members, namespaces, oauth_access_tokens,
    personal_access_tokens, projects, refresh_tokens, users,
};

/// A personal (or project/group bot) access token by the SHA-256 of its secret.
pub async fn personal_access_token(
    c: &impl ConnectionTrait,
    digest: &str,
) -> Result<Option<personal_access_tokens::Model>, DbErr> {
    personal_access_tokens::Entity::find()
        .filter(personal_access_tokens::Column::TokenDigest.eq(digest))
        .one(c)
        .await
}

/// A deploy token by the SHA-256 of its secret.
pub async fn deploy_token(
    c: &impl ConnectionTrait,
    digest: &str,
) -> Result<Option<deploy_tokens::Model>, DbErr> {
    deploy_tokens::Entity::find()
        .filter(deploy_tokens::Column::TokenDigest.eq(digest))
        .one(c)
        .await
}

/// A CI job by the SHA-256 of its job token (whatever its status).
pub async fn job(c: &impl ConnectionTrait, digest: &str) -> Result<Option<ci_jobs::Model>, DbErr> {
    ci_jobs::Entity::find()
        .filter(ci_jobs::Column::TokenDigest.eq(digest))
        .one(c)
        .await
}

/// An API token from `POST /oauth/token` by the SHA-256 of its secret.
pub async fn oauth_access_token(
    c: &impl ConnectionTrait,
    digest: &str,
) -> Result<Option<oauth_access_tokens::Model>, DbErr> {
    oauth_access_tokens::Entity::find()
        .filter(oauth_access_tokens::Column::TokenDigest.eq(digest))
        .one(c)
        .await
}

/// A registry refresh token by the SHA-256 of its secret.
pub async fn refresh_token(
    c: &impl ConnectionTrait,
    digest: &str,
) -> Result<Option<refresh_tokens::Model>, DbErr> {
    refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenDigest.eq(digest))
        .one(c)
        .await
}

/// A user by username, or by email when `login` contains `@` (GitLab accepts both).
pub async fn user_by_login(
    c: &impl ConnectionTrait,
    login: &str,
) -> Result<Option<users::Model>, DbErr> {
    let column = if login.contains('@') {
        users::Column::Email
    } else {
        users::Column::Username
    };
    users::Entity::find().filter(column.eq(login)).one(c).await
}

/// The project owning the repository `path`: the longest project path that `path` equals or
/// extends by at most two segments (a repository is a project's path plus 0 to 2 segments).
pub async fn project_for_repository(
    c: &impl ConnectionTrait,
    path: &str,
) -> Result<Option<projects::Model>, DbErr> {
    let segments: Vec<&str> = path.split('/').collect();
    let candidates: Vec<String> = (0..=2)
        .filter(|extra| segments.len() >= 2 + extra)
        .map(|extra| segments[..segments.len() - extra].join("/"))
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let mut found = projects::Entity::find()
        .filter(projects::Column::FullPath.is_in(candidates))
        .all(c)
        .await?;
    found.sort_by_key(|p| std::cmp::Reverse(p.full_path.len()));
    Ok(found.into_iter().next())
}

/// The namespace chain of the namespace at `full_path`, root first (`acme`,
/// `acme/platform`).
pub async fn namespace_chain(
    c: &impl ConnectionTrait,
    full_path: &str,
) -> Result<Vec<namespaces::Model>, DbErr> {
    // Full paths are unique and nest by prefix, so the ancestors are the prefixes of this
    // one: one query, no recursion.
    let segments: Vec<&str> = full_path.split('/').collect();
    let prefixes: Vec<String> = (1..=segments.len())
        .map(|n| segments[..n].join("/"))
        .collect();
    let mut chain = namespaces::Entity::find()
        .filter(namespaces::Column::FullPath.is_in(prefixes))
        .all(c)
        .await?;
    chain.sort_by_key(|n| n.full_path.len());
    Ok(chain)
}

/// The highest access level `user_id` holds on a project directly or through any of the
/// namespaces in `chain`, ignoring expired memberships.
pub async fn effective_level(
    c: &impl ConnectionTrait,
    user_id: i64,
    project_id: i64,
    chain: &[i64],
    now: DateTime<Utc>,
) -> Result<Option<i32>, DbErr> {
    let sources = Condition::any()
        .add(
            members::Column::SourceType
                .eq("project")
                .and(members::Column::SourceId.eq(project_id)),
        )
        .add(
            members::Column::SourceType
                .eq("namespace")
                .and(members::Column::SourceId.is_in(chain.to_vec())),
        );
    let level: Option<Option<i32>> = members::Entity::find()
        .select_only()
        .column_as(Expr::col(members::Column::AccessLevel).max(), "level")
        .filter(members::Column::UserId.eq(user_id))
        .filter(sources)
        .filter(
            Condition::any()
                .add(members::Column::ExpiresAt.is_null())
                .add(members::Column::ExpiresAt.gt(now)),
        )
        .into_tuple()
        .one(c)
        .await?;
    Ok(level.flatten())
}

/// The highest access level `user_id` holds on a namespace directly or through its
/// ancestors (`chain`, which includes the namespace itself).
pub async fn effective_namespace_level(
    c: &impl ConnectionTrait,
    user_id: i64,
    chain: &[i64],
    now: DateTime<Utc>,
) -> Result<Option<i32>, DbErr> {
    let level: Option<Option<i32>> = members::Entity::find()
        .select_only()
        .column_as(Expr::col(members::Column::AccessLevel).max(), "level")
        .filter(members::Column::UserId.eq(user_id))
        .filter(members::Column::SourceType.eq("namespace"))
        .filter(members::Column::SourceId.is_in(chain.to_vec()))
        .filter(
            Condition::any()
                .add(members::Column::ExpiresAt.is_null())
                .add(members::Column::ExpiresAt.gt(now)),
        )
        .into_tuple()
        .one(c)
        .await?;
    Ok(level.flatten())
}

/// Does `project_id`'s job-token allowlist admit jobs of `source_project_id`, listed itself
/// or through one of the namespaces in `source_chain`?
pub async fn allowlist_admits(
    c: &impl ConnectionTrait,
    project_id: i64,
    source_project_id: i64,
    source_chain: &[i64],
) -> Result<bool, DbErr> {
    let n = job_token_allowlist::Entity::find()
        .filter(job_token_allowlist::Column::ProjectId.eq(project_id))
        .filter(
            Condition::any()
                .add(job_token_allowlist::Column::SourceProjectId.eq(source_project_id))
                .add(job_token_allowlist::Column::SourceNamespaceId.is_in(source_chain.to_vec())),
        )
        .count(c)
        .await?;
    Ok(n > 0)
}

/// The full path of the namespace a project lives in (its path without the last segment).
pub fn project_namespace_path(project: &projects::Model) -> &str {
    project
        .full_path
        .rsplit_once('/')
        .map_or(project.full_path.as_str(), |(ns, _)| ns)
}

/// A project by id.
pub async fn project_by_id(
    c: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<projects::Model>, DbErr> {
    projects::Entity::find_by_id(id).one(c).await
}
