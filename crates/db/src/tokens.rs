//! Queries on personal access tokens (also held by project and group bots) and deploy
//! tokens. Only SHA-256 digests of the secrets are stored.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{deploy_tokens, personal_access_tokens as pat};

/// A personal access token to create.
#[derive(Debug, Clone)]
pub struct NewPat<'a> {
    /// Its user (a person or a bot).
    pub user_id: i64,
    /// Display name.
    pub name: &'a str,
    /// SHA-256 hex of the secret.
    pub digest: &'a str,
    /// Scope names.
    pub scopes: &'a [String],
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Insert a personal access token.
pub async fn create_pat(c: &impl ConnectionTrait, new: NewPat<'_>) -> Result<pat::Model, DbErr> {
    pat::ActiveModel {
        user_id: Set(new.user_id),
        name: Set(new.name.to_owned()),
        token_digest: Set(new.digest.to_owned()),
        scopes: Set(new.scopes.join(",")),
        expires_at: Set(new.expires_at),
        revoked: Set(false),
        last_used_at: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(c)
    .await
}

/// A personal access token by id.
pub async fn pat(c: &impl ConnectionTrait, id: i64) -> Result<Option<pat::Model>, DbErr> {
    pat::Entity::find_by_id(id).one(c).await
}

/// Which personal access tokens to list.
#[derive(Debug, Clone, Default)]
pub struct PatQuery {
    /// Only tokens of these users.
    pub user_ids: Option<Vec<i64>>,
    /// `Some(true)`: only live ones (unrevoked, unexpired); `Some(false)`: only dead ones.
    pub active: Option<bool>,
    /// Only revoked (or unrevoked) ones.
    pub revoked: Option<bool>,
}

/// Tokens matching `q`, by id, with the total count.
pub async fn list_pats(
    c: &impl ConnectionTrait,
    q: &PatQuery,
    offset: u64,
    limit: u64,
) -> Result<(Vec<pat::Model>, u64), DbErr> {
    let mut select = pat::Entity::find();
    if let Some(ids) = &q.user_ids {
        select = select.filter(pat::Column::UserId.is_in(ids.clone()));
    }
    if let Some(r) = q.revoked {
        select = select.filter(pat::Column::Revoked.eq(r));
    }
    let now = Utc::now();
    let live = Condition::all().add(pat::Column::Revoked.eq(false)).add(
        Condition::any()
            .add(pat::Column::ExpiresAt.is_null())
            .add(pat::Column::ExpiresAt.gt(now)),
    );
    match q.active {
        Some(true) => select = select.filter(live),
        Some(false) => select = select.filter(live.not()),
        None => {}
    }
    let total = select.clone().count(c).await?;
    let rows = select
        .order_by_asc(pat::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// Revoke a personal access token; `false` when it was already revoked. The check and the
/// write are one statement, so of two concurrent rotations of one token only one wins (a
/// leaked token rotated twice must not leave two live successors).
pub async fn revoke_pat(c: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    let res = pat::Entity::update_many()
        .col_expr(pat::Column::Revoked, Expr::value(true))
        .filter(pat::Column::Id.eq(id))
        .filter(pat::Column::Revoked.eq(false))
        .exec(c)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Whose a deploy token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOwner {
    /// A project's.
    Project(i64),
    /// A group's (it covers every project below the group).
    Namespace(i64),
}

/// A deploy token to create.
#[derive(Debug, Clone)]
pub struct NewDeployToken<'a> {
    /// Its project or group.
    pub owner: DeployOwner,
    /// Display name.
    pub name: &'a str,
    /// Login name; `None`: GitLab's `gitlab+deploy-token-<id>`.
    pub username: Option<&'a str>,
    /// SHA-256 hex of the secret.
    pub digest: &'a str,
    /// Scope names.
    pub scopes: &'a [String],
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Insert a deploy token. The default username contains the id, known only after the
/// insert, so it is set by an update in the same transaction.
pub async fn create_deploy_token(
    c: &impl ConnectionTrait,
    new: NewDeployToken<'_>,
) -> Result<deploy_tokens::Model, DbErr> {
    let (project_id, namespace_id) = match new.owner {
        DeployOwner::Project(p) => (Some(p), None),
        DeployOwner::Namespace(n) => (None, Some(n)),
    };
    let row = deploy_tokens::ActiveModel {
        project_id: Set(project_id),
        namespace_id: Set(namespace_id),
        name: Set(new.name.to_owned()),
        username: Set(new.username.unwrap_or("").to_owned()),
        token_digest: Set(new.digest.to_owned()),
        scopes: Set(new.scopes.join(",")),
        expires_at: Set(new.expires_at),
        revoked: Set(false),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(c)
    .await?;
    if new.username.is_some() {
        return Ok(row);
    }
    let username = format!("gitlab+deploy-token-{}", row.id);
    let mut am: deploy_tokens::ActiveModel = row.into();
    am.username = Set(username);
    am.update(c).await
}

fn owner_condition(owner: DeployOwner) -> Condition {
    match owner {
        DeployOwner::Project(p) => Condition::all().add(deploy_tokens::Column::ProjectId.eq(p)),
        DeployOwner::Namespace(n) => Condition::all().add(deploy_tokens::Column::NamespaceId.eq(n)),
    }
}

/// The deploy tokens of `owner` (`active_only`: unrevoked and unexpired), by id, with the
/// total count.
pub async fn list_deploy_tokens(
    c: &impl ConnectionTrait,
    owner: DeployOwner,
    active_only: bool,
    offset: u64,
    limit: u64,
) -> Result<(Vec<deploy_tokens::Model>, u64), DbErr> {
    let mut select = deploy_tokens::Entity::find().filter(owner_condition(owner));
    if active_only {
        select = select
            .filter(deploy_tokens::Column::Revoked.eq(false))
            .filter(
                Condition::any()
                    .add(deploy_tokens::Column::ExpiresAt.is_null())
                    .add(deploy_tokens::Column::ExpiresAt.gt(Utc::now())),
            );
    }
    let total = select.clone().count(c).await?;
    let rows = select
        .order_by_asc(deploy_tokens::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// `owner`'s deploy token `id`.
pub async fn deploy_token(
    c: &impl ConnectionTrait,
    owner: DeployOwner,
    id: i64,
) -> Result<Option<deploy_tokens::Model>, DbErr> {
    deploy_tokens::Entity::find_by_id(id)
        .filter(owner_condition(owner))
        .one(c)
        .await
}

/// Revoke a deploy token.
pub async fn revoke_deploy_token(c: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    deploy_tokens::Entity::update_many()
        .col_expr(deploy_tokens::Column::Revoked, Expr::value(true))
        .filter(deploy_tokens::Column::Id.eq(id))
        .exec(c)
        .await?;
    Ok(())
}
