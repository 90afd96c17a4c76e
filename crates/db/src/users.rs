//! Queries on users and their personal namespaces.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{namespaces, users};

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Unique username (also the personal namespace's path).
    pub username: &'a str,
    /// Unique email.
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// argon2id PHC string, if the user has a password.
    pub password_hash: Option<String>,
    /// Instance administrator.
    pub admin: bool,
    /// A bot (holder of a project or group access token).
    pub bot: bool,
}

/// Insert a user and, for people, their personal namespace (GitLab's `namespace` of kind
/// `user`), in the caller's transaction. A duplicate username or email is a unique
/// violation.
pub async fn create(c: &impl ConnectionTrait, new: NewUser<'_>) -> Result<users::Model, DbErr> {
    let now = Utc::now();
    let user = users::ActiveModel {
        username: Set(new.username.to_owned()),
        email: Set(new.email.to_owned()),
        name: Set(new.name.to_owned()),
        password_hash: Set(new.password_hash),
        admin: Set(new.admin),
        bot: Set(new.bot),
        state: Set("active".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(c)
    .await?;
    if !new.bot {
        namespaces::ActiveModel {
            parent_id: Set(None),
            path: Set(new.username.to_owned()),
            full_path: Set(new.username.to_owned()),
            name: Set(new.name.to_owned()),
            kind: Set("user".into()),
            owner_user_id: Set(Some(user.id)),
            visibility: Set("public".into()),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(c)
        .await?;
    }
    Ok(user)
}

/// A user by id.
pub async fn by_id(c: &impl ConnectionTrait, id: i64) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find_by_id(id).one(c).await
}

/// Is this username taken, by a user or by any namespace's path (a personal namespace
/// takes the username as its path)?
pub async fn username_taken(c: &impl ConnectionTrait, username: &str) -> Result<bool, DbErr> {
    let users = users::Entity::find()
        .filter(users::Column::Username.eq(username))
        .count(c)
        .await?;
    Ok(users > 0 || crate::namespaces::path_taken(c, username).await?)
}

/// Is this email taken?
pub async fn email_taken(c: &impl ConnectionTrait, email: &str) -> Result<bool, DbErr> {
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .count(c)
        .await?
        > 0)
}

/// Which users to list.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Exactly this username.
    pub username: Option<String>,
    /// Substring of the username or name (and of the email with `search_email`).
    pub search: Option<String>,
    /// Let `search` match emails too (admins only: anyone else could learn another
    /// user's email a substring at a time).
    pub search_email: bool,
    /// Only users in this state (`active`, `blocked`).
    pub state: Option<String>,
    /// Only this user (what a non-admin may list).
    pub id: Option<i64>,
}

/// Users matching `q`, by id, with the total count.
pub async fn list(
    c: &impl ConnectionTrait,
    q: &UserQuery,
    offset: u64,
    limit: u64,
) -> Result<(Vec<users::Model>, u64), DbErr> {
    use crate::namespaces::contains_ci;
    use users::Column as U;
    let mut select = users::Entity::find();
    if let Some(u) = &q.username {
        select = select.filter(U::Username.eq(u.as_str()));
    }
    if let Some(s) = q.search.as_deref().filter(|s| !s.is_empty()) {
        let mut any = Condition::any()
            .add(contains_ci(U::Username, s))
            .add(contains_ci(U::Name, s));
        if q.search_email {
            any = any.add(contains_ci(U::Email, s));
        }
        select = select.filter(any);
    }
    if let Some(st) = &q.state {
        select = select.filter(U::State.eq(st.as_str()));
    }
    if let Some(id) = q.id {
        select = select.filter(U::Id.eq(id));
    }
    let total = select.clone().count(c).await?;
    let rows = select
        .order_by_asc(U::Id)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// Set a user's state (`active`, `blocked`).
pub async fn set_state(
    c: &impl ConnectionTrait,
    user: users::Model,
    state: &str,
) -> Result<users::Model, DbErr> {
    let mut am: users::ActiveModel = user.into();
    am.state = Set(state.to_owned());
    am.updated_at = Set(Utc::now());
    am.update(c).await
}

/// Delete a user with their personal projects; memberships, tokens, jobs and the personal
/// namespace go by cascade.
pub async fn delete(c: &impl ConnectionTrait, user_id: i64) -> Result<(), DbErr> {
    if let Some(ns) = crate::namespaces::personal(c, user_id).await? {
        let projects = crate::entity::projects::Entity::find()
            .filter(crate::entity::projects::Column::NamespaceId.eq(ns.id))
            .all(c)
            .await?;
        for p in &projects {
            crate::project_admin::delete(c, p).await?;
        }
    }
    users::Entity::delete_by_id(user_id).exec(c).await?;
    Ok(())
}
