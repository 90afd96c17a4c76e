//! Queries on immutable tag rules: a project's patterns over tag names that, once a tag
//! matching one exists, keep it from being overwritten or deleted.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{projects, tag_immutability_rules as rules};

/// Inside a write transaction, hold `project_id`'s row until it ends, so two rule creations
/// cannot both pass the per-project cap (PostgreSQL `FOR UPDATE`; SQLite's write
/// transactions already run one at a time).
pub async fn lock_project(c: &impl ConnectionTrait, project_id: i64) -> Result<(), DbErr> {
    projects::Entity::find_by_id(project_id)
        .lock_exclusive()
        .one(c)
        .await?;
    Ok(())
}

/// `project_id`'s rules, oldest first.
pub async fn list(c: &impl ConnectionTrait, project_id: i64) -> Result<Vec<rules::Model>, DbErr> {
    rules::Entity::find()
        .filter(rules::Column::ProjectId.eq(project_id))
        .order_by_asc(rules::Column::Id)
        .all(c)
        .await
}

/// Just `project_id`'s patterns, oldest first (what a token carries).
pub async fn patterns(c: &impl ConnectionTrait, project_id: i64) -> Result<Vec<String>, DbErr> {
    rules::Entity::find()
        .select_only()
        .column(rules::Column::TagNamePattern)
        .filter(rules::Column::ProjectId.eq(project_id))
        .order_by_asc(rules::Column::Id)
        .into_tuple()
        .all(c)
        .await
}

/// How many rules `project_id` has.
pub async fn count(c: &impl ConnectionTrait, project_id: i64) -> Result<u64, DbErr> {
    rules::Entity::find()
        .filter(rules::Column::ProjectId.eq(project_id))
        .count(c)
        .await
}

/// Add a rule to `project_id`.
pub async fn create(
    c: &impl ConnectionTrait,
    project_id: i64,
    pattern: &str,
) -> Result<rules::Model, DbErr> {
    rules::ActiveModel {
        project_id: Set(project_id),
        tag_name_pattern: Set(pattern.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(c)
    .await
}

/// Delete rule `id` of `project_id`; `false` when the project has no such rule.
pub async fn delete(c: &impl ConnectionTrait, project_id: i64, id: i64) -> Result<bool, DbErr> {
    let res = rules::Entity::delete_many()
        .filter(rules::Column::Id.eq(id))
        .filter(rules::Column::ProjectId.eq(project_id))
        .exec(c)
        .await?;
    Ok(res.rows_affected > 0)
}
