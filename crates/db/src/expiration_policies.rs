//! Queries on cleanup policies (GitLab's container expiration policies): one row per
//! project at most; a project without one has GitLab's defaults
//! ([`berth_core::cleanup_policy::Policy::default`]).

use berth_core::cleanup_policy::Policy;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::entity::container_expiration_policies::{self as policies, Column};

/// The stored settings of a row.
pub fn policy(m: &policies::Model) -> Policy {
    Policy {
        cadence: m.cadence.clone(),
        enabled: m.enabled,
        keep_n: m.keep_n,
        older_than: m.older_than.clone(),
        name_regex: m.name_regex.clone(),
        name_regex_keep: m.name_regex_keep.clone(),
    }
}

/// `project_id`'s stored policy, if it has one.
pub async fn get(
    c: &impl ConnectionTrait,
    project_id: i64,
) -> Result<Option<policies::Model>, DbErr> {
    policies::Entity::find_by_id(project_id).one(c).await
}

/// The stored policies of `project_ids` (one query; projects without one are absent).
pub async fn for_projects(
    c: &impl ConnectionTrait,
    project_ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<policies::Model>, DbErr> {
    let ids: Vec<i64> = project_ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    policies::Entity::find()
        .filter(Column::ProjectId.is_in(ids))
        .all(c)
        .await
}

/// Store `p` as `project_id`'s policy, scheduled at `next_run_at` (insert or replace).
pub async fn upsert(
    c: &impl ConnectionTrait,
    project_id: i64,
    p: &Policy,
    next_run_at: Option<DateTime<Utc>>,
) -> Result<policies::Model, DbErr> {
    let now = Utc::now();
    let row = policies::ActiveModel {
        project_id: Set(project_id),
        cadence: Set(p.cadence.clone()),
        enabled: Set(p.enabled),
        keep_n: Set(p.keep_n),
        older_than: Set(p.older_than.clone()),
        name_regex: Set(p.name_regex.clone()),
        name_regex_keep: Set(p.name_regex_keep.clone()),
        next_run_at: Set(next_run_at),
        created_at: Set(now),
        updated_at: Set(now),
    };
    policies::Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::ProjectId)
                .update_columns([
                    Column::Cadence,
                    Column::Enabled,
                    Column::KeepN,
                    Column::OlderThan,
                    Column::NameRegex,
                    Column::NameRegexKeep,
                    Column::NextRunAt,
                    Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    get(c, project_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("container_expiration_policies".into()))
}
