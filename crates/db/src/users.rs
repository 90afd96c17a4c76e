//! Queries on users and their personal namespaces.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

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
