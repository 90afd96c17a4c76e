//! A repository's tags as the management API lists them (beyond GitLab: "sort and filter tags by
//! name or time"): one order (name, or a time with the name as tie-breaker), a direction,
//! filters on the name and on times, and either an offset page with the filtered total or a
//! keyset page after a cursor.
//!
//! Times: [`TagOrder::CreatedAt`] is the `updated_at` column, the time the tag was last
//! pointed at its manifest, which the API shows as the tag's `created_at` (GitLab's
//! meaning: when this image was tagged). A tag never pulled (`last_pulled_at` NULL) sorts as
//! the oldest: first ascending, last descending, on both databases.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, NullOrdering, Order};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

use crate::entity::tags::{self, Column as T};
use crate::namespaces::contains_ci;

/// What tags are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagOrder {
    /// The tag name (GitLab's only order).
    #[default]
    Name,
    /// When the tag was last pushed (moved to its manifest): the `updated_at` column.
    CreatedAt,
    /// When a client last pulled the manifest by this tag (never pulled: oldest).
    LastPulledAt,
}

impl TagOrder {
    /// The time column of a time order.
    fn time_column(self) -> Option<T> {
        match self {
            TagOrder::Name => None,
            TagOrder::CreatedAt => Some(T::UpdatedAt),
            TagOrder::LastPulledAt => Some(T::LastPulledAt),
        }
    }

    /// May the time column be NULL?
    fn nullable(self) -> bool {
        self == TagOrder::LastPulledAt
    }

    /// The value of this order's time column in `tag` (`None` for name order or NULL).
    pub fn time_of(self, tag: &tags::Model) -> Option<DateTime<Utc>> {
        match self {
            TagOrder::Name => None,
            TagOrder::CreatedAt => Some(tag.updated_at),
            TagOrder::LastPulledAt => tag.last_pulled_at,
        }
    }
}

/// Which tags to list, in what order.
#[derive(Debug, Clone, Default)]
pub struct TagQuery {
    /// Sort key.
    pub order: TagOrder,
    /// Descending instead of ascending.
    pub desc: bool,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    /// Tagged (`updated_at`) at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Tagged (`updated_at`) before.
    pub created_before: Option<DateTime<Utc>>,
    /// Last pulled at or after (never-pulled tags excluded).
    pub pulled_after: Option<DateTime<Utc>>,
    /// Last pulled before (never-pulled tags excluded).
    pub pulled_before: Option<DateTime<Utc>>,
}

/// Where a keyset page starts: after the tag with this sort time and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The order's time of the last tag shown (`None`: name order, or never pulled).
    pub time: Option<DateTime<Utc>>,
    /// The last tag shown.
    pub name: String,
}

impl TagQuery {
    /// The repository's tags matching the filters, without order.
    fn filtered(&self, repository_id: i64) -> Select<tags::Entity> {
        let mut q = tags::Entity::find().filter(T::RepositoryId.eq(repository_id));
        if let Some(name) = self.name.as_deref() {
            q = q.filter(contains_ci(T::Name, name));
        }
        if let Some(t) = self.created_after {
            q = q.filter(T::UpdatedAt.gte(t));
        }
        if let Some(t) = self.created_before {
            q = q.filter(T::UpdatedAt.lt(t));
        }
        if let Some(t) = self.pulled_after {
            q = q.filter(T::LastPulledAt.gte(t));
        }
        if let Some(t) = self.pulled_before {
            q = q.filter(T::LastPulledAt.lt(t));
        }
        q
    }

    /// `q` in this order, the name breaking ties in the same direction.
    fn ordered(&self, q: Select<tags::Entity>) -> Select<tags::Entity> {
        let dir = if self.desc { Order::Desc } else { Order::Asc };
        let q = match self.order.time_column() {
            None => q,
            Some(col) if self.order.nullable() => {
                // Never pulled = oldest, spelled out: the databases disagree by default.
                let nulls = if self.desc {
                    NullOrdering::Last
                } else {
                    NullOrdering::First
                };
                q.order_by_with_nulls(col, dir.clone(), nulls)
            }
            Some(col) => q.order_by(col, dir.clone()),
        };
        q.order_by(T::Name, dir)
    }

    /// Tags strictly after `cursor` in this order.
    fn after(&self, cursor: &Cursor) -> Condition {
        let name = cursor.name.as_str();
        let name_after = if self.desc {
            T::Name.lt(name)
        } else {
            T::Name.gt(name)
        };
        let Some(col) = self.order.time_column() else {
            return Condition::all().add(name_after);
        };
        match cursor.time {
            Some(t) => {
                let mut c = Condition::any()
                    .add(if self.desc { col.lt(t) } else { col.gt(t) })
                    .add(Condition::all().add(col.eq(t)).add(name_after));
                if self.desc && self.order.nullable() {
                    // Never-pulled tags come last when descending.
                    c = c.add(Expr::col(col).is_null());
                }
                c
            }
            // The cursor tag was never pulled (only a nullable order gets here).
            None => {
                let c = Condition::all()
                    .add(Expr::col(col).is_null())
                    .add(name_after);
                if self.desc {
                    c
                } else {
                    Condition::any().add(c).add(Expr::col(col).is_not_null())
                }
            }
        }
    }
}

/// An offset page of a repository's tags under `query`, and how many tags match in all.
pub async fn page(
    c: &impl ConnectionTrait,
    repository_id: i64,
    query: &TagQuery,
    offset: u64,
    limit: u64,
) -> Result<(Vec<tags::Model>, u64), DbErr> {
    let base = query.filtered(repository_id);
    let total = base.clone().count(c).await?;
    let rows = query
        .ordered(base)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// Up to `limit` of a repository's tags under `query`, after `cursor` if given.
pub async fn keyset(
    c: &impl ConnectionTrait,
    repository_id: i64,
    query: &TagQuery,
    cursor: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<tags::Model>, DbErr> {
    let mut q = query.filtered(repository_id);
    if let Some(cursor) = cursor {
        q = q.filter(query.after(cursor));
    }
    query.ordered(q).limit(limit).all(c).await
}
