//! Read-only queries behind the registry's management API: the repositories under a
//! project or group path, tag counts and names, and deduplicated sizes over manifests and
//! their index children. Tag pages (sorted, filtered) are [`crate::tag_listing`]'s.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::entity::{manifests, projects, repositories, tags};
use crate::namespaces::{like, like_escape};

/// Repositories named `path` or under `path/`, by name.
pub async fn repositories_under(
    c: &impl ConnectionTrait,
    path: &str,
) -> Result<Vec<repositories::Model>, DbErr> {
    use repositories::Column as R;
    repositories::Entity::find()
        .filter(
            Condition::any()
                .add(R::Name.eq(path))
                .add(like(R::Name, format!("{}/%", like_escape(path)))),
        )
        .order_by_asc(R::Name)
        .all(c)
        .await
}

/// Projects whose full path lies under `path/` (a group's projects and its subgroups', or
/// projects nested below a project's path).
pub async fn projects_under(
    c: &impl ConnectionTrait,
    path: &str,
) -> Result<Vec<projects::Model>, DbErr> {
    use projects::Column as P;
    projects::Entity::find()
        .filter(like(P::FullPath, format!("{}/%", like_escape(path))))
        .order_by_asc(P::FullPath)
        .all(c)
        .await
}

/// The index in `project_paths` of the project owning repository `name`: the longest path
/// that `name` equals or extends by at most two segments (the rule of
/// [`crate::access::project_for_repository`]).
pub fn owner_of(name: &str, project_paths: &[&str]) -> Option<usize> {
    project_paths
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            name == **p
                || name
                    .strip_prefix(**p)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|rest| rest.split('/').count() <= 2)
        })
        .max_by_key(|(_, p)| p.len())
        .map(|(i, _)| i)
}

/// One repository by id.
pub async fn repository(
    c: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<repositories::Model>, DbErr> {
    repositories::Entity::find_by_id(id).one(c).await
}

/// One manifest by id.
pub async fn manifest(
    c: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<manifests::Model>, DbErr> {
    manifests::Entity::find_by_id(id).one(c).await
}

/// How many tags each of `repository_ids` has (absent: none).
pub async fn tag_counts(
    c: &impl ConnectionTrait,
    repository_ids: &[i64],
) -> Result<HashMap<i64, u64>, DbErr> {
    if repository_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, i64)> = tags::Entity::find()
        .select_only()
        .column(tags::Column::RepositoryId)
        .column_as(tags::Column::Id.count(), "n")
        .filter(tags::Column::RepositoryId.is_in(repository_ids.iter().copied()))
        .group_by(tags::Column::RepositoryId)
        .into_tuple()
        .all(c)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// The tag names of each of `repository_ids`, by name.
pub async fn tag_names(
    c: &impl ConnectionTrait,
    repository_ids: &[i64],
) -> Result<HashMap<i64, Vec<String>>, DbErr> {
    if repository_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = tags::Entity::find()
        .select_only()
        .column(tags::Column::RepositoryId)
        .column(tags::Column::Name)
        .filter(tags::Column::RepositoryId.is_in(repository_ids.iter().copied()))
        .order_by_asc(tags::Column::Name)
        .into_tuple()
        .all(c)
        .await?;
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for (id, name) in rows {
        out.entry(id).or_default().push(name);
    }
    Ok(out)
}

/// Sum of the sizes of the distinct blobs (configs and layers) that `manifest_ids` and,
/// through indexes, their children reference (one query, [`crate::usage`]).
pub async fn distinct_blob_bytes(
    c: &impl ConnectionTrait,
    manifest_ids: &[i64],
) -> Result<i64, DbErr> {
    crate::usage::manifests_usage(c, manifest_ids).await
}

/// Deduplicated bytes of a repository: the distinct blobs its tagged manifests reference,
/// directly or through tagged indexes (one query, [`crate::usage`]).
pub async fn repository_size(c: &impl ConnectionTrait, repository_id: i64) -> Result<i64, DbErr> {
    crate::usage::repository_usage(c, repository_id).await
}

#[cfg(test)]
mod tests {
    use super::owner_of;

    #[test]
    fn owner_is_the_longest_project_path_within_two_segments() {
        let paths = ["g/app", "g/app/worker"];
        assert_eq!(owner_of("g/app", &paths), Some(0));
        assert_eq!(owner_of("g/app/web", &paths), Some(0));
        assert_eq!(owner_of("g/app/a/b", &paths), Some(0));
        assert_eq!(owner_of("g/app/a/b/c", &paths), None);
        assert_eq!(owner_of("g/app/worker", &paths), Some(1));
        assert_eq!(owner_of("g/app/worker/x", &paths), Some(1));
        assert_eq!(owner_of("g/apple", &paths), None);
    }
}
