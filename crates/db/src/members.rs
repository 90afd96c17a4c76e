//! Queries on memberships of projects and groups: direct members, the inherited view
//! (highest level wins), and adding, changing and removing members.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};

use crate::entity::{members, users};

/// What a membership is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A project.
    Project(i64),
    /// A group (namespace).
    Namespace(i64),
}

impl Source {
    fn parts(self) -> (&'static str, i64) {
        match self {
            Source::Project(id) => ("project", id),
            Source::Namespace(id) => ("namespace", id),
        }
    }

    fn condition(self) -> Condition {
        let (kind, id) = self.parts();
        Condition::all()
            .add(members::Column::SourceType.eq(kind))
            .add(members::Column::SourceId.eq(id))
    }
}

/// A membership with its user.
pub type Member = (members::Model, users::Model);

async fn with_users(
    c: &impl ConnectionTrait,
    rows: Vec<members::Model>,
) -> Result<Vec<Member>, DbErr> {
    let ids: Vec<i64> = rows.iter().map(|m| m.user_id).collect();
    let users: HashMap<i64, users::Model> = users::Entity::find()
        .filter(users::Column::Id.is_in(ids))
        .all(c)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|m| users.get(&m.user_id).cloned().map(|u| (m, u)))
        .collect())
}

/// The direct members of `source`, by user id.
pub async fn list_direct(c: &impl ConnectionTrait, source: Source) -> Result<Vec<Member>, DbErr> {
    let rows = members::Entity::find()
        .filter(source.condition())
        .order_by_asc(members::Column::UserId)
        .all(c)
        .await?;
    with_users(c, rows).await
}

/// Everyone with access to a project (`project_id`) or group through itself or the
/// namespaces in `chain`, one row per user carrying their highest unexpired level.
pub async fn list_inherited(
    c: &impl ConnectionTrait,
    project_id: Option<i64>,
    chain: &[i64],
    now: DateTime<Utc>,
) -> Result<Vec<Member>, DbErr> {
    let mut sources = Condition::any().add(
        Condition::all()
            .add(members::Column::SourceType.eq("namespace"))
            .add(members::Column::SourceId.is_in(chain.to_vec())),
    );
    if let Some(p) = project_id {
        sources = sources.add(Source::Project(p).condition());
    }
    let rows = members::Entity::find()
        .filter(sources)
        .filter(
            Condition::any()
                .add(members::Column::ExpiresAt.is_null())
                .add(members::Column::ExpiresAt.gt(now)),
        )
        .all(c)
        .await?;
    let mut best: HashMap<i64, members::Model> = HashMap::new();
    for m in rows {
        match best.get(&m.user_id) {
            Some(b) if b.access_level >= m.access_level => {}
            _ => {
                best.insert(m.user_id, m);
            }
        }
    }
    let mut rows: Vec<members::Model> = best.into_values().collect();
    rows.sort_by_key(|m| m.user_id);
    with_users(c, rows).await
}

/// `user_id`'s direct membership of `source`.
pub async fn get(
    c: &impl ConnectionTrait,
    source: Source,
    user_id: i64,
) -> Result<Option<members::Model>, DbErr> {
    members::Entity::find()
        .filter(source.condition())
        .filter(members::Column::UserId.eq(user_id))
        .one(c)
        .await
}

/// Add `user_id` to `source` (a second membership is a unique violation).
pub async fn add(
    c: &impl ConnectionTrait,
    source: Source,
    user_id: i64,
    access_level: i32,
    expires_at: Option<DateTime<Utc>>,
) -> Result<members::Model, DbErr> {
    let (kind, id) = source.parts();
    members::ActiveModel {
        source_type: Set(kind.to_owned()),
        source_id: Set(id),
        user_id: Set(user_id),
        access_level: Set(access_level),
        expires_at: Set(expires_at),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(c)
    .await
}

/// Change a membership's level and (when `expires_at` is `Some`) its expiry.
pub async fn update(
    c: &impl ConnectionTrait,
    member: members::Model,
    access_level: Option<i32>,
    expires_at: Option<Option<DateTime<Utc>>>,
) -> Result<members::Model, DbErr> {
    let mut am: members::ActiveModel = member.into();
    if let Some(l) = access_level {
        am.access_level = Set(l);
    }
    if let Some(e) = expires_at {
        am.expires_at = Set(e);
    }
    am.update(c).await
}

/// Remove a membership by its row id.
pub async fn remove(c: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    members::Entity::delete_by_id(id).exec(c).await?;
    Ok(())
}

/// Remove every membership of `source` (when it is deleted).
pub async fn remove_all(c: &impl ConnectionTrait, source: Source) -> Result<(), DbErr> {
    members::Entity::delete_many()
        .filter(source.condition())
        .exec(c)
        .await?;
    Ok(())
}

/// Inside a write transaction, hold the row of what `source` is a membership of (its
/// project or group) until the transaction ends, and return whether that row exists.
///
/// "A group keeps at least one Owner" is a check over several rows (count the other
/// Owners, then demote or remove one): two Owners removing each other at once would each
/// count the other and both succeed. Taking this lock first, in the transaction that makes
/// the change, makes such changes take turns, so the second one counts after the first has
/// committed. PostgreSQL: `SELECT … FOR UPDATE`; SQLite's write transactions already run
/// one at a time.
pub async fn lock_source(c: &impl ConnectionTrait, source: Source) -> Result<bool, DbErr> {
    use sea_orm::QuerySelect;

    use crate::entity::{namespaces, projects};
    Ok(match source {
        Source::Project(id) => projects::Entity::find_by_id(id)
            .lock_exclusive()
            .one(c)
            .await?
            .is_some(),
        Source::Namespace(id) => namespaces::Entity::find_by_id(id)
            .lock_exclusive()
            .one(c)
            .await?
            .is_some(),
    })
}

/// How many direct members of `source` other than `except_user` hold `level` unexpired at
/// `now` (a group keeps at least one Owner; an expired membership grants nothing).
pub async fn count_others_at_level(
    c: &impl ConnectionTrait,
    source: Source,
    level: i32,
    except_user: i64,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    members::Entity::find()
        .filter(source.condition())
        .filter(members::Column::AccessLevel.eq(level))
        .filter(members::Column::UserId.ne(except_user))
        .filter(
            Condition::any()
                .add(members::Column::ExpiresAt.is_null())
                .add(members::Column::ExpiresAt.gt(now)),
        )
        .count(c)
        .await
}

/// The unexpired memberships `user_id` holds directly on projects with at least
/// `min_level`: their project ids.
pub async fn member_project_ids(
    c: &impl ConnectionTrait,
    user_id: i64,
    min_level: i32,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    use sea_orm::QuerySelect;
    members::Entity::find()
        .select_only()
        .column(members::Column::SourceId)
        .filter(members::Column::UserId.eq(user_id))
        .filter(members::Column::SourceType.eq("project"))
        .filter(members::Column::AccessLevel.gte(min_level))
        .filter(
            Condition::any()
                .add(members::Column::ExpiresAt.is_null())
                .add(members::Column::ExpiresAt.gt(now)),
        )
        .into_tuple()
        .all(c)
        .await
}
