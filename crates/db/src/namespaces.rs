//! Queries on namespaces: nested groups and users' personal namespaces, and the conditions
//! behind "which groups and projects may this user see" (membership is inherited down the
//! tree, so a membership of `acme` covers everything under `acme/`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, IntoColumnRef, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{members, namespaces, projects};

/// Who is looking, for visibility filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Not signed in: public things only.
    Anonymous,
    /// A signed-in user: public, internal, and private things they are a member of.
    User(i64),
    /// An instance administrator: everything.
    Admin,
}

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup<'a> {
    /// The parent group, for a subgroup.
    pub parent: Option<&'a namespaces::Model>,
    /// The last path segment.
    pub path: &'a str,
    /// Display name.
    pub name: &'a str,
    /// `public`, `internal` or `private`.
    pub visibility: &'a str,
}

/// `value` for a `LIKE` pattern, with its wildcards escaped (`\` is the escape character).
pub fn like_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `col LIKE pattern ESCAPE '\'`.
pub fn like(col: impl IntoColumnRef, pattern: String) -> sea_orm::sea_query::SimpleExpr {
    Expr::col(col).like(LikeExpr::new(pattern).escape('\\'))
}

/// Case-insensitive substring match of `col` against `needle`.
pub fn contains_ci(col: impl IntoColumnRef, needle: &str) -> sea_orm::sea_query::SimpleExpr {
    let pattern = format!("%{}%", like_escape(&needle.to_lowercase()));
    Expr::expr(Func::lower(Expr::col(col))).like(LikeExpr::new(pattern).escape('\\'))
}

/// Rows whose `full_path` column lies in or under one of `namespaces`: `id_col` is one of
/// their ids or `path_col` extends one of their paths. An empty list matches nothing.
pub fn within(
    id_col: impl IntoColumnRef + Copy,
    path_col: impl IntoColumnRef + Copy,
    namespaces: &[namespaces::Model],
) -> Condition {
    let mut cond = Condition::any().add(Expr::col(id_col).is_in(namespaces.iter().map(|n| n.id)));
    for n in namespaces {
        cond = cond.add(like(path_col, format!("{}/%", like_escape(&n.full_path))));
    }
    cond
}

/// The groups `user_id` is a direct, unexpired member of with at least `min_level`.
pub async fn member_namespaces(
    c: &impl ConnectionTrait,
    user_id: i64,
    min_level: i32,
    now: DateTime<Utc>,
) -> Result<Vec<namespaces::Model>, DbErr> {
    let ids: Vec<i64> = members::Entity::find()
        .select_only()
        .column(members::Column::SourceId)
        .filter(members::Column::UserId.eq(user_id))
        .filter(members::Column::SourceType.eq("namespace"))
        .filter(members::Column::AccessLevel.gte(min_level))
        .filter(
            Condition::any()
                .add(members::Column::ExpiresAt.is_null())
                .add(members::Column::ExpiresAt.gt(now)),
        )
        .into_tuple()
        .all(c)
        .await?;
    namespaces::Entity::find()
        .filter(namespaces::Column::Id.is_in(ids))
        .all(c)
        .await
}

/// A namespace by id.
pub async fn by_id(c: &impl ConnectionTrait, id: i64) -> Result<Option<namespaces::Model>, DbErr> {
    namespaces::Entity::find_by_id(id).one(c).await
}

/// A namespace by full path.
pub async fn by_full_path(
    c: &impl ConnectionTrait,
    full_path: &str,
) -> Result<Option<namespaces::Model>, DbErr> {
    namespaces::Entity::find()
        .filter(namespaces::Column::FullPath.eq(full_path))
        .one(c)
        .await
}

/// Namespaces by full path (in any order).
pub async fn by_full_paths(
    c: &impl ConnectionTrait,
    full_paths: Vec<String>,
) -> Result<Vec<namespaces::Model>, DbErr> {
    namespaces::Entity::find()
        .filter(namespaces::Column::FullPath.is_in(full_paths))
        .all(c)
        .await
}

/// A user's personal namespace.
pub async fn personal(
    c: &impl ConnectionTrait,
    user_id: i64,
) -> Result<Option<namespaces::Model>, DbErr> {
    namespaces::Entity::find()
        .filter(namespaces::Column::Kind.eq("user"))
        .filter(namespaces::Column::OwnerUserId.eq(user_id))
        .one(c)
        .await
}

/// Is `full_path` used by a namespace or a project? (They share one path space: the
/// registry maps repository names onto both.)
pub async fn path_taken(c: &impl ConnectionTrait, full_path: &str) -> Result<bool, DbErr> {
    let ns = namespaces::Entity::find()
        .filter(namespaces::Column::FullPath.eq(full_path))
        .count(c)
        .await?;
    let pr = projects::Entity::find()
        .filter(projects::Column::FullPath.eq(full_path))
        .count(c)
        .await?;
    Ok(ns + pr > 0)
}

/// Insert a group (its `full_path` follows from the parent's).
pub async fn create_group(
    c: &impl ConnectionTrait,
    new: NewGroup<'_>,
) -> Result<namespaces::Model, DbErr> {
    let full_path = match new.parent {
        Some(p) => format!("{}/{}", p.full_path, new.path),
        None => new.path.to_owned(),
    };
    namespaces::ActiveModel {
        parent_id: Set(new.parent.map(|p| p.id)),
        path: Set(new.path.to_owned()),
        full_path: Set(full_path),
        name: Set(new.name.to_owned()),
        kind: Set("group".into()),
        owner_user_id: Set(None),
        visibility: Set(new.visibility.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(c)
    .await
}

/// Which groups to list.
#[derive(Debug, Clone, Default)]
pub struct GroupQuery {
    /// Substring of the name or path.
    pub search: Option<String>,
    /// Children of this group only.
    pub parent_id: Option<i64>,
    /// Top-level groups only.
    pub top_level_only: bool,
    /// Only groups the viewer is a member of (directly or through an ancestor) with at
    /// least this level.
    pub min_level: Option<i32>,
}

/// The groups `viewer` may see matching `q`, by name, with the total count.
pub async fn list_groups(
    c: &impl ConnectionTrait,
    viewer: Viewer,
    q: &GroupQuery,
    offset: u64,
    limit: u64,
) -> Result<(Vec<namespaces::Model>, u64), DbErr> {
    use namespaces::Column as N;
    let now = Utc::now();
    let mut select = namespaces::Entity::find().filter(N::Kind.eq("group"));
    match viewer {
        Viewer::Admin => {}
        Viewer::Anonymous => select = select.filter(N::Visibility.eq("public")),
        Viewer::User(uid) => {
            let mine = member_namespaces(c, uid, 0, now).await?;
            select = select.filter(
                Condition::any()
                    .add(N::Visibility.is_in(["public", "internal"]))
                    .add(within(N::Id, N::FullPath, &mine)),
            );
        }
    }
    if let (Some(min), Viewer::User(uid)) = (q.min_level, viewer) {
        let mine = member_namespaces(c, uid, min, now).await?;
        select = select.filter(within(N::Id, N::FullPath, &mine));
    }
    if let Some(s) = q.search.as_deref().filter(|s| !s.is_empty()) {
        select = select.filter(
            Condition::any()
                .add(contains_ci(N::Name, s))
                .add(contains_ci(N::Path, s)),
        );
    }
    if let Some(parent) = q.parent_id {
        select = select.filter(N::ParentId.eq(parent));
    }
    if q.top_level_only {
        select = select.filter(N::ParentId.is_null());
    }
    let total = select.clone().count(c).await?;
    let rows = select
        .order_by_asc(N::Name)
        .order_by_asc(N::Id)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// Change a group's name and visibility.
pub async fn update_group(
    c: &impl ConnectionTrait,
    group: namespaces::Model,
    name: Option<String>,
    visibility: Option<String>,
) -> Result<namespaces::Model, DbErr> {
    let mut am: namespaces::ActiveModel = group.into();
    if let Some(n) = name {
        am.name = Set(n);
    }
    if let Some(v) = visibility {
        am.visibility = Set(v);
    }
    am.update(c).await
}

/// The visibilities of a group's direct subgroups and projects (a group may not become
/// less visible than what it contains).
pub async fn child_visibilities(c: &impl ConnectionTrait, id: i64) -> Result<Vec<String>, DbErr> {
    let mut out: Vec<String> = namespaces::Entity::find()
        .select_only()
        .column(namespaces::Column::Visibility)
        .filter(namespaces::Column::ParentId.eq(id))
        .into_tuple()
        .all(c)
        .await?;
    let projects: Vec<String> = projects::Entity::find()
        .select_only()
        .column(projects::Column::Visibility)
        .filter(projects::Column::NamespaceId.eq(id))
        .into_tuple()
        .all(c)
        .await?;
    out.extend(projects);
    Ok(out)
}

/// How many subgroups and projects a group holds directly.
pub async fn children(c: &impl ConnectionTrait, id: i64) -> Result<(u64, u64), DbErr> {
    let groups = namespaces::Entity::find()
        .filter(namespaces::Column::ParentId.eq(id))
        .count(c)
        .await?;
    let projects = projects::Entity::find()
        .filter(projects::Column::NamespaceId.eq(id))
        .count(c)
        .await?;
    Ok((groups, projects))
}

/// Delete an empty group and its memberships (deploy tokens go with it by cascade).
pub async fn delete_group(c: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    members::Entity::delete_many()
        .filter(members::Column::SourceType.eq("namespace"))
        .filter(members::Column::SourceId.eq(id))
        .exec(c)
        .await?;
    namespaces::Entity::delete_by_id(id).exec(c).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("a_b%c\\d"), "a\\_b\\%c\\\\d");
    }
}
