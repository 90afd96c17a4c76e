//! Queries on repositories.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::repositories::{self, Column, Entity};

/// The repository called `name`, if it exists.
pub async fn find_by_name(
    c: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<repositories::Model>, DbErr> {
    Entity::find().filter(Column::Name.eq(name)).one(c).await
}

/// The repository called `name`, created on first write.
pub async fn get_or_create(
    c: &impl ConnectionTrait,
    name: &str,
    now: DateTime<Utc>,
) -> Result<repositories::Model, DbErr> {
    if let Some(r) = find_by_name(c, name).await? {
        return Ok(r);
    }
    let row = repositories::ActiveModel {
        name: Set(name.to_owned()),
        created_at: Set(now),
        pull_count: Set(0),
        ..Default::default()
    };
    // Two writers may create the same repository at once: the loser reads the winner's row.
    Entity::insert(row)
        .on_conflict(OnConflict::column(Column::Name).do_nothing().to_owned())
        .exec_without_returning(c)
        .await?;
    find_by_name(c, name)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("repository {name}")))
}

/// Record a push.
pub async fn touch_pushed(
    c: &impl ConnectionTrait,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastPushedAt, now.into())
        .filter(Column::Id.eq(id))
        .exec(c)
        .await?;
    Ok(())
}

/// Repository names in lexical order after `last`, at most `n` (the catalog).
pub async fn list_names(
    c: &impl ConnectionTrait,
    last: Option<&str>,
    n: u64,
) -> Result<Vec<String>, DbErr> {
    let mut q = Entity::find()
        .select_only()
        .column(Column::Name)
        .order_by_asc(Column::Name)
        .limit(n);
    if let Some(last) = last {
        q = q.filter(Column::Name.gt(last));
    }
    q.into_tuple::<String>().all(c).await
}
