//! Queries on CI jobs (the small stand-in for a CI system) and the job-token allowlist:
//! which projects and groups may pull from a project with their jobs' tokens.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{ci_jobs, job_token_allowlist as allow, namespaces, projects};

/// Start a job of `project_id` for `user_id` with the digest of its token.
pub async fn create(
    c: &impl ConnectionTrait,
    project_id: i64,
    user_id: i64,
    digest: &str,
    ref_name: Option<&str>,
) -> Result<ci_jobs::Model, DbErr> {
    ci_jobs::ActiveModel {
        project_id: Set(project_id),
        user_id: Set(user_id),
        token_digest: Set(digest.to_owned()),
        status: Set("running".into()),
        ref_name: Set(ref_name.map(str::to_owned)),
        created_at: Set(Utc::now()),
        finished_at: Set(None),
        ..Default::default()
    }
    .insert(c)
    .await
}

/// A job by id.
pub async fn by_id(c: &impl ConnectionTrait, id: i64) -> Result<Option<ci_jobs::Model>, DbErr> {
    ci_jobs::Entity::find_by_id(id).one(c).await
}

/// End a running job with `status`; `false` when it was not running. Its token dies with
/// it (only running jobs' tokens are accepted).
pub async fn finish(c: &impl ConnectionTrait, id: i64, status: &str) -> Result<bool, DbErr> {
    let res = ci_jobs::Entity::update_many()
        .col_expr(ci_jobs::Column::Status, Expr::value(status))
        .col_expr(ci_jobs::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(ci_jobs::Column::Id.eq(id))
        .filter(ci_jobs::Column::Status.eq("running"))
        .exec(c)
        .await?;
    Ok(res.rows_affected > 0)
}

/// The projects on `project_id`'s allowlist, by id, with the total count.
pub async fn allowed_projects(
    c: &impl ConnectionTrait,
    project_id: i64,
    offset: u64,
    limit: u64,
) -> Result<(Vec<projects::Model>, u64), DbErr> {
    let ids: Vec<Option<i64>> = allow::Entity::find()
        .select_only()
        .column(allow::Column::SourceProjectId)
        .filter(allow::Column::ProjectId.eq(project_id))
        .filter(allow::Column::SourceProjectId.is_not_null())
        .into_tuple()
        .all(c)
        .await?;
    let select =
        projects::Entity::find().filter(projects::Column::Id.is_in(ids.into_iter().flatten()));
    let total = select.clone().count(c).await?;
    let rows = select
        .order_by_asc(projects::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// The groups on `project_id`'s allowlist, by id, with the total count.
pub async fn allowed_groups(
    c: &impl ConnectionTrait,
    project_id: i64,
    offset: u64,
    limit: u64,
) -> Result<(Vec<namespaces::Model>, u64), DbErr> {
    let ids: Vec<Option<i64>> = allow::Entity::find()
        .select_only()
        .column(allow::Column::SourceNamespaceId)
        .filter(allow::Column::ProjectId.eq(project_id))
        .filter(allow::Column::SourceNamespaceId.is_not_null())
        .into_tuple()
        .all(c)
        .await?;
    let select =
        namespaces::Entity::find().filter(namespaces::Column::Id.is_in(ids.into_iter().flatten()));
    let total = select.clone().count(c).await?;
    let rows = select
        .order_by_asc(namespaces::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// What an allowlist entry admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowSource {
    /// Jobs of this project.
    Project(i64),
    /// Jobs of projects in or under this group.
    Namespace(i64),
}

fn source_filter(
    select: sea_orm::Select<allow::Entity>,
    project_id: i64,
    source: AllowSource,
) -> sea_orm::Select<allow::Entity> {
    let select = select.filter(allow::Column::ProjectId.eq(project_id));
    match source {
        AllowSource::Project(p) => select.filter(allow::Column::SourceProjectId.eq(p)),
        AllowSource::Namespace(n) => select.filter(allow::Column::SourceNamespaceId.eq(n)),
    }
}

/// Add `source` to `project_id`'s allowlist; `false` when it is already there.
pub async fn allow(
    c: &impl ConnectionTrait,
    project_id: i64,
    source: AllowSource,
) -> Result<bool, DbErr> {
    if source_filter(allow::Entity::find(), project_id, source)
        .count(c)
        .await?
        > 0
    {
        return Ok(false);
    }
    let (sp, sn) = match source {
        AllowSource::Project(p) => (Some(p), None),
        AllowSource::Namespace(n) => (None, Some(n)),
    };
    allow::ActiveModel {
        project_id: Set(project_id),
        source_project_id: Set(sp),
        source_namespace_id: Set(sn),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(c)
    .await?;
    Ok(true)
}

/// Remove `source` from `project_id`'s allowlist; `false` when it was not there.
pub async fn disallow(
    c: &impl ConnectionTrait,
    project_id: i64,
    source: AllowSource,
) -> Result<bool, DbErr> {
    let mut delete = allow::Entity::delete_many().filter(allow::Column::ProjectId.eq(project_id));
    delete = match source {
        AllowSource::Project(p) => delete.filter(allow::Column::SourceProjectId.eq(p)),
        AllowSource::Namespace(n) => delete.filter(allow::Column::SourceNamespaceId.eq(n)),
    };
    Ok(delete.exec(c).await?.rows_affected > 0)
}
