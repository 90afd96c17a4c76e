//! Read-only queries behind the registry's management API (SPEC 5): the repositories under a
//! project or group path, tags with offset and keyset pages, and deduplicated sizes over
//! manifests and their index children.

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::entity::{blobs, layers, manifest_references, manifests, projects, repositories, tags};
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

/// A page of a repository's tag names by name (offset pagination), and the total.
pub async fn tag_page(
    c: &impl ConnectionTrait,
    repository_id: i64,
    offset: u64,
    limit: u64,
) -> Result<(Vec<String>, u64), DbErr> {
    let base = tags::Entity::find().filter(tags::Column::RepositoryId.eq(repository_id));
    let total = base.clone().count(c).await?;
    let names = base
        .select_only()
        .column(tags::Column::Name)
        .order_by_asc(tags::Column::Name)
        .offset(offset)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?;
    Ok((names, total))
}

/// Up to `limit` tag names after `last` in name order (`desc`: reverse order, before `last`).
pub async fn tag_keyset(
    c: &impl ConnectionTrait,
    repository_id: i64,
    last: Option<&str>,
    desc: bool,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    use tags::Column as T;
    let mut q = tags::Entity::find()
        .select_only()
        .column(T::Name)
        .filter(T::RepositoryId.eq(repository_id))
        .limit(limit);
    q = if desc {
        q.order_by_desc(T::Name)
    } else {
        q.order_by_asc(T::Name)
    };
    if let Some(last) = last {
        q = q.filter(if desc {
            T::Name.lt(last)
        } else {
            T::Name.gt(last)
        });
    }
    q.into_tuple().all(c).await
}

/// Sum of the sizes of the distinct blobs (configs and layers) that `manifest_ids` and,
/// through indexes, their children reference.
pub async fn distinct_blob_bytes(
    c: &impl ConnectionTrait,
    manifest_ids: &[i64],
) -> Result<i64, DbErr> {
    let mut seen: HashSet<i64> = manifest_ids.iter().copied().collect();
    let mut frontier: Vec<i64> = seen.iter().copied().collect();
    while !frontier.is_empty() {
        let children: Vec<i64> = manifest_references::Entity::find()
            .select_only()
            .column(manifest_references::Column::ChildId)
            .filter(manifest_references::Column::ParentId.is_in(frontier))
            .into_tuple()
            .all(c)
            .await?;
        frontier = children.into_iter().filter(|id| seen.insert(*id)).collect();
    }
    if seen.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = seen.into_iter().collect();
    let mut sizes: HashMap<String, i64> = layers::Entity::find()
        .select_only()
        .column(layers::Column::BlobDigest)
        .column(layers::Column::Size)
        .filter(layers::Column::ManifestId.is_in(ids.iter().copied()))
        .into_tuple::<(String, i64)>()
        .all(c)
        .await?
        .into_iter()
        .collect();
    let configs: Vec<Option<String>> = manifests::Entity::find()
        .select_only()
        .column(manifests::Column::ConfigDigest)
        .filter(manifests::Column::Id.is_in(ids))
        .into_tuple()
        .all(c)
        .await?;
    let configs: HashSet<String> = configs
        .into_iter()
        .flatten()
        .filter(|d| !sizes.contains_key(d))
        .collect();
    if !configs.is_empty() {
        let rows: Vec<(String, i64)> = blobs::Entity::find()
            .select_only()
            .column(blobs::Column::Digest)
            .column(blobs::Column::Size)
            .filter(blobs::Column::Digest.is_in(configs))
            .into_tuple()
            .all(c)
            .await?;
        sizes.extend(rows);
    }
    Ok(sizes.values().sum())
}

/// Deduplicated bytes of a repository: the distinct blobs its tagged manifests reference,
/// directly or through tagged indexes.
pub async fn repository_size(c: &impl ConnectionTrait, repository_id: i64) -> Result<i64, DbErr> {
    let tagged: Vec<i64> = tags::Entity::find()
        .select_only()
        .column(tags::Column::ManifestId)
        .filter(tags::Column::RepositoryId.eq(repository_id))
        .distinct()
        .into_tuple()
        .all(c)
        .await?;
    distinct_blob_bytes(c, &tagged).await
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
