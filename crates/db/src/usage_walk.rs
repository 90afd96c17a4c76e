//! Plain single-table reads for `berth-gc usage --recompute`: a second, independent way to
//! compute deduplicated usage that walks tags → index children → layers and
//! configs in the caller's code instead of [`crate::usage`]'s recursive CTE, so the two can
//! be cross-checked.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::entity::{
    blobs, layers, manifest_references, manifests, namespaces, projects, repositories, tags,
};
use crate::namespaces::{like, like_escape};

/// Ids per `IN (...)` list.
const CHUNK: usize = 500;

/// A page of root namespaces `(id, full_path)` after id `after`, by id.
pub async fn root_namespaces(
    c: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<(i64, String)>, DbErr> {
    namespaces::Entity::find()
        .select_only()
        .column(namespaces::Column::Id)
        .column(namespaces::Column::FullPath)
        .filter(namespaces::Column::ParentId.is_null())
        .filter(namespaces::Column::Id.gt(after))
        .order_by_asc(namespaces::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await
}

/// Projects `(id, full_path)` below the namespace path `root`, by path.
pub async fn projects_under(
    c: &impl ConnectionTrait,
    root: &str,
) -> Result<Vec<(i64, String)>, DbErr> {
    projects::Entity::find()
        .select_only()
        .column(projects::Column::Id)
        .column(projects::Column::FullPath)
        .filter(like(
            projects::Column::FullPath,
            format!("{}/%", like_escape(root)),
        ))
        .order_by_asc(projects::Column::FullPath)
        .into_tuple()
        .all(c)
        .await
}

/// Repositories `(id, name)` at or below `path`, by name.
pub async fn repositories_under(
    c: &impl ConnectionTrait,
    path: &str,
) -> Result<Vec<(i64, String)>, DbErr> {
    repositories::Entity::find()
        .select_only()
        .column(repositories::Column::Id)
        .column(repositories::Column::Name)
        .filter(
            Condition::any()
                .add(repositories::Column::Name.eq(path))
                .add(like(
                    repositories::Column::Name,
                    format!("{}/%", like_escape(path)),
                )),
        )
        .order_by_asc(repositories::Column::Name)
        .into_tuple()
        .all(c)
        .await
}

/// Ids of the manifests a repository's tags point at (one per tag).
pub async fn tagged_manifests(
    c: &impl ConnectionTrait,
    repository_id: i64,
) -> Result<Vec<i64>, DbErr> {
    tags::Entity::find()
        .select_only()
        .column(tags::Column::ManifestId)
        .filter(tags::Column::RepositoryId.eq(repository_id))
        .into_tuple()
        .all(c)
        .await
}

/// The manifests `ids` keep alive ([`crate::liveness`]'s edges, read table by table):
/// their index children, the subjects of those that are referrers, and their referrers, all
/// within each manifest's repository.
pub async fn live_neighbours(c: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<i64>, DbErr> {
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        out.extend(
            manifest_references::Entity::find()
                .select_only()
                .column(manifest_references::Column::ChildId)
                .filter(manifest_references::Column::ParentId.is_in(chunk.to_vec()))
                .into_tuple::<i64>()
                .all(c)
                .await?,
        );
        let rows: Vec<(i64, String, Option<String>)> = manifests::Entity::find()
            .select_only()
            .column(manifests::Column::RepositoryId)
            .column(manifests::Column::Digest)
            .column(manifests::Column::SubjectDigest)
            .filter(manifests::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(c)
            .await?;
        let subjects: Vec<&String> = rows.iter().filter_map(|r| r.2.as_ref()).collect();
        if !subjects.is_empty() {
            let found: Vec<(i64, i64, String)> = manifests::Entity::find()
                .select_only()
                .column(manifests::Column::Id)
                .column(manifests::Column::RepositoryId)
                .column(manifests::Column::Digest)
                .filter(manifests::Column::Digest.is_in(subjects.iter().map(|s| s.as_str())))
                .into_tuple()
                .all(c)
                .await?;
            out.extend(found.into_iter().filter_map(|(id, repo, digest)| {
                rows.iter()
                    .any(|r| r.0 == repo && r.2.as_deref() == Some(digest.as_str()))
                    .then_some(id)
            }));
        }
        let referrers: Vec<(i64, i64, Option<String>)> = manifests::Entity::find()
            .select_only()
            .column(manifests::Column::Id)
            .column(manifests::Column::RepositoryId)
            .column(manifests::Column::SubjectDigest)
            .filter(manifests::Column::SubjectDigest.is_in(rows.iter().map(|r| r.1.as_str())))
            .into_tuple()
            .all(c)
            .await?;
        out.extend(referrers.into_iter().filter_map(|(id, repo, subject)| {
            rows.iter()
                .any(|r| r.0 == repo && Some(&r.1) == subject.as_ref())
                .then_some(id)
        }));
    }
    Ok(out)
}

/// Blob digests `ids` reference: their layers and their configs (with repeats).
pub async fn blob_digests(c: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<String>, DbErr> {
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        out.extend(
            layers::Entity::find()
                .select_only()
                .column(layers::Column::BlobDigest)
                .filter(layers::Column::ManifestId.is_in(chunk.to_vec()))
                .into_tuple::<String>()
                .all(c)
                .await?,
        );
        let configs: Vec<Option<String>> = manifests::Entity::find()
            .select_only()
            .column(manifests::Column::ConfigDigest)
            .filter(manifests::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(c)
            .await?;
        out.extend(configs.into_iter().flatten());
    }
    Ok(out)
}

/// Sizes of those of `digests` that have a blob row.
pub async fn blob_sizes(
    c: &impl ConnectionTrait,
    digests: &[String],
) -> Result<Vec<(String, i64)>, DbErr> {
    let mut out = Vec::new();
    for chunk in digests.chunks(CHUNK) {
        out.extend(
            blobs::Entity::find()
                .select_only()
                .column(blobs::Column::Digest)
                .column(blobs::Column::Size)
                .filter(blobs::Column::Digest.is_in(chunk.to_vec()))
                .into_tuple::<(String, i64)>()
                .all(c)
                .await?,
        );
    }
    Ok(out)
}

/// Bytes the open upload sessions of a repository hold.
pub async fn upload_bytes(c: &impl ConnectionTrait, repository_id: i64) -> Result<i64, DbErr> {
    let sizes: Vec<i64> = crate::entity::uploads::Entity::find()
        .select_only()
        .column(crate::entity::uploads::Column::Size)
        .filter(crate::entity::uploads::Column::RepositoryId.eq(repository_id))
        .into_tuple()
        .all(c)
        .await?;
    Ok(sizes.iter().sum())
}
