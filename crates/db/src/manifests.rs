//! Queries on manifests, their layers and index references, and referrers.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{layers, manifest_references, manifests, tags};

/// A manifest row ready to insert.
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Owner repository.
    pub repository_id: i64,
    /// Canonical digest of `payload`.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Artifact type as the referrers API reports it.
    pub artifact_type: Option<String>,
    /// Subject digest, for referrers.
    pub subject_digest: Option<String>,
    /// Config blob, for image manifests.
    pub config_digest: Option<String>,
    /// The exact bytes pushed.
    pub payload: Vec<u8>,
}

/// A layer reference: digest, media type, size.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// Blob digest.
    pub digest: String,
    /// Media type in the manifest.
    pub media_type: String,
    /// Size in the manifest.
    pub size: i64,
}

/// The manifest `digest` of a repository.
pub async fn find_by_digest(
    c: &impl ConnectionTrait,
    repository_id: i64,
    digest: &str,
) -> Result<Option<manifests::Model>, DbErr> {
    manifests::Entity::find()
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .filter(manifests::Column::Digest.eq(digest))
        .one(c)
        .await
}

/// Inside a write transaction, hold manifest `id`'s row until it ends (PostgreSQL `FOR
/// UPDATE`; SQLite's write transactions already run one at a time). A tag being pointed at
/// it meanwhile waits for the lock (its foreign key check takes a share lock), so the tags
/// read after this call are all the tags a delete would take with it.
pub async fn lock(c: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    manifests::Entity::find_by_id(id)
        .lock_exclusive()
        .one(c)
        .await?;
    Ok(())
}

/// The manifest tag `tag` points at.
pub async fn find_by_tag(
    c: &impl ConnectionTrait,
    repository_id: i64,
    tag: &str,
) -> Result<Option<manifests::Model>, DbErr> {
    let Some(t) = tags::Entity::find()
        .filter(tags::Column::RepositoryId.eq(repository_id))
        .filter(tags::Column::Name.eq(tag))
        .one(c)
        .await?
    else {
        return Ok(None);
    };
    manifests::Entity::find_by_id(t.manifest_id).one(c).await
}

/// The digest of the manifest tag `tag` points at, without reading the manifest's bytes (a
/// caller that already holds them by digest need not load them again).
pub async fn digest_by_tag(
    c: &impl ConnectionTrait,
    repository_id: i64,
    tag: &str,
) -> Result<Option<String>, DbErr> {
    let tagged = Query::select()
        .column(tags::Column::ManifestId)
        .from(tags::Entity)
        .and_where(tags::Column::RepositoryId.eq(repository_id))
        .and_where(tags::Column::Name.eq(tag))
        .to_owned();
    manifests::Entity::find()
        .select_only()
        .column(manifests::Column::Digest)
        .filter(manifests::Column::Id.in_subquery(tagged))
        .into_tuple()
        .one(c)
        .await
}

/// Ids of the manifests among `digests` in a repository, as (digest, id).
pub async fn ids_among(
    c: &impl ConnectionTrait,
    repository_id: i64,
    digests: Vec<String>,
) -> Result<Vec<(String, i64)>, DbErr> {
    manifests::Entity::find()
        .select_only()
        .column(manifests::Column::Digest)
        .column(manifests::Column::Id)
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .filter(manifests::Column::Digest.is_in(digests))
        .into_tuple()
        .all(c)
        .await
}

/// Insert a manifest with its layers and child references; returns the new id.
pub async fn insert(
    c: &impl ConnectionTrait,
    m: NewManifest,
    layer_refs: Vec<NewLayer>,
    child_ids: Vec<i64>,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let repository_id = m.repository_id;
    let size = m.payload.len() as i64;
    let row = manifests::ActiveModel {
        repository_id: Set(m.repository_id),
        digest: Set(m.digest),
        media_type: Set(m.media_type),
        artifact_type: Set(m.artifact_type),
        subject_digest: Set(m.subject_digest),
        config_digest: Set(m.config_digest),
        payload: Set(m.payload),
        size: Set(size),
        created_at: Set(now),
        last_pulled_at: Set(None),
        pull_count: Set(0),
        ..Default::default()
    };
    let id = manifests::Entity::insert(row).exec(c).await?.last_insert_id;
    if !layer_refs.is_empty() {
        let rows = layer_refs.into_iter().map(|l| layers::ActiveModel {
            repository_id: Set(repository_id),
            manifest_id: Set(id),
            blob_digest: Set(l.digest),
            media_type: Set(l.media_type),
            size: Set(l.size),
            ..Default::default()
        });
        layers::Entity::insert_many(rows)
            .exec_without_returning(c)
            .await?;
    }
    let mut children = child_ids;
    children.sort_unstable();
    children.dedup();
    if !children.is_empty() {
        let rows = children
            .into_iter()
            .map(|child| manifest_references::ActiveModel {
                repository_id: Set(repository_id),
                parent_id: Set(id),
                child_id: Set(child),
            });
        manifest_references::Entity::insert_many(rows)
            .exec_without_returning(c)
            .await?;
    }
    Ok(id)
}

/// Blob digests a manifest references: config first, then layers.
pub async fn blob_digests(
    c: &impl ConnectionTrait,
    m: &manifests::Model,
) -> Result<Vec<String>, DbErr> {
    let mut out: Vec<String> = m.config_digest.iter().cloned().collect();
    let layer_digests: Vec<String> = layers::Entity::find()
        .select_only()
        .column(layers::Column::BlobDigest)
        .filter(layers::Column::ManifestId.eq(m.id))
        .into_tuple()
        .all(c)
        .await?;
    out.extend(layer_digests);
    Ok(out)
}

/// Ids of the children of an index.
pub async fn child_ids(c: &impl ConnectionTrait, parent_id: i64) -> Result<Vec<i64>, DbErr> {
    manifest_references::Entity::find()
        .select_only()
        .column(manifest_references::Column::ChildId)
        .filter(manifest_references::Column::ParentId.eq(parent_id))
        .into_tuple()
        .all(c)
        .await
}

/// Is the manifest a child of some index?
pub async fn is_referenced_by_index(
    c: &impl ConnectionTrait,
    manifest_id: i64,
) -> Result<bool, DbErr> {
    Ok(manifest_references::Entity::find()
        .filter(manifest_references::Column::ChildId.eq(manifest_id))
        .one(c)
        .await?
        .is_some())
}

/// Delete a manifest row (layers and parent links go with it).
pub async fn delete(c: &impl ConnectionTrait, manifest_id: i64) -> Result<(), DbErr> {
    manifests::Entity::delete_by_id(manifest_id).exec(c).await?;
    Ok(())
}

/// Delete manifest `m` and queue for GC review what it referenced, in the caller's write
/// transaction: its config and layers (`ManifestDelete`) and, for an index, its children
/// (`IndexDelete`), for a referrer its subject (`ReferrerDelete`), and its own referrers
/// (`SubjectDelete`). Blobs and children
/// are never deleted here: GC decides after review,
/// so what other manifests or repositories share stays. The caller has checked the
/// manifest may go (no immutable tag, not a child of an index).
pub async fn delete_and_queue(
    c: &impl ConnectionTrait,
    m: &manifests::Model,
    review_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use crate::gc::{self, Event};
    let blob_digests = blob_digests(c, m).await?;
    let children = child_ids(c, m.id).await?;
    delete(c, m.id).await?;
    for b in blob_digests {
        gc::enqueue_blob(c, &b, Event::ManifestDelete, review_after, now).await?;
    }
    for child in children {
        gc::enqueue_manifest(
            c,
            m.repository_id,
            child,
            Event::IndexDelete,
            review_after,
            now,
        )
        .await?;
    }
    // A referrer (signature, SBOM) keeps an untagged subject: review the subject again.
    if let Some(subject) = &m.subject_digest
        && let Some(s) = find_by_digest(c, m.repository_id, subject).await?
    {
        gc::enqueue_manifest(
            c,
            m.repository_id,
            s.id,
            Event::ReferrerDelete,
            review_after,
            now,
        )
        .await?;
    }
    // Its referrers lived as long as it did: review them now.
    for id in referrer_ids(c, m.repository_id, &m.digest).await? {
        gc::enqueue_manifest(
            c,
            m.repository_id,
            id,
            Event::SubjectDelete,
            review_after,
            now,
        )
        .await?;
    }
    Ok(())
}

/// A referrer as the referrers API lists it, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct Referrer {
    /// Row id (to load its bytes with [`payloads`]).
    pub id: i64,
    /// Canonical digest: the order of the list and its page cursor.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Artifact type as the referrers API reports it.
    pub artifact_type: Option<String>,
    /// Size of the manifest's bytes.
    pub size: i64,
}

/// At most `limit` manifests of a repository whose subject is `subject`, optionally of one
/// artifact type, with digests after `after`, in digest order; their bytes are not read (a
/// subject may have many large referrers; [`payloads`] loads one page's). Digest order makes
/// the cursor the last digest listed: it needs no lookup and survives that referrer's
/// deletion between two pages.
pub async fn referrers(
    c: &impl ConnectionTrait,
    repository_id: i64,
    subject: &str,
    artifact_type: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Referrer>, DbErr> {
    let mut q = manifests::Entity::find()
        .select_only()
        .column(manifests::Column::Id)
        .column(manifests::Column::Digest)
        .column(manifests::Column::MediaType)
        .column(manifests::Column::ArtifactType)
        .column(manifests::Column::Size)
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .filter(manifests::Column::SubjectDigest.eq(subject))
        .order_by_asc(manifests::Column::Digest)
        .limit(limit);
    if let Some(t) = artifact_type {
        q = q.filter(manifests::Column::ArtifactType.eq(t));
    }
    if let Some(after) = after {
        q = q.filter(manifests::Column::Digest.gt(after));
    }
    q.into_model::<Referrer>().all(c).await
}

/// Ids of every manifest of a repository whose subject is `subject`.
pub async fn referrer_ids(
    c: &impl ConnectionTrait,
    repository_id: i64,
    subject: &str,
) -> Result<Vec<i64>, DbErr> {
    manifests::Entity::find()
        .select_only()
        .column(manifests::Column::Id)
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .filter(manifests::Column::SubjectDigest.eq(subject))
        .order_by_asc(manifests::Column::Id)
        .into_tuple()
        .all(c)
        .await
}

/// The bytes of the manifests `ids` of a repository, as (id, bytes), in no particular order.
pub async fn payloads(
    c: &impl ConnectionTrait,
    repository_id: i64,
    ids: Vec<i64>,
) -> Result<Vec<(i64, Vec<u8>)>, DbErr> {
    manifests::Entity::find()
        .select_only()
        .column(manifests::Column::Id)
        .column(manifests::Column::Payload)
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .filter(manifests::Column::Id.is_in(ids))
        .into_tuple()
        .all(c)
        .await
}
