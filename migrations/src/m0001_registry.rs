//! The registry's metadata: repositories, blobs and their repository links, manifests with
//! layers and index references, tags, upload sessions and the two GC review queues.

use sea_orm_migration::prelude::*;

/// Creates the registry tables.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_registry"
    }
}

#[derive(Iden)]
enum Repositories {
    Table,
    Id,
    Name,
    CreatedAt,
    LastPushedAt,
    LastPulledAt,
    PullCount,
}

#[derive(Iden)]
enum Blobs {
    Table,
    Digest,
    Size,
    CreatedAt,
}

#[derive(Iden)]
enum RepositoryBlobs {
    Table,
    RepositoryId,
    BlobDigest,
    CreatedAt,
}

#[derive(Iden)]
enum Manifests {
    Table,
    Id,
    RepositoryId,
    Digest,
    MediaType,
    ArtifactType,
    SubjectDigest,
    ConfigDigest,
    Payload,
    Size,
    CreatedAt,
    LastPulledAt,
    PullCount,
}

#[derive(Iden)]
enum Layers {
    Table,
    Id,
    RepositoryId,
    ManifestId,
    BlobDigest,
    MediaType,
    Size,
}

#[derive(Iden)]
enum ManifestReferences {
    Table,
    RepositoryId,
    ParentId,
    ChildId,
}

#[derive(Iden)]
enum Tags {
    Table,
    Id,
    RepositoryId,
    Name,
    ManifestId,
    CreatedAt,
    UpdatedAt,
    LastPulledAt,
    PullCount,
}

#[derive(Iden)]
enum Uploads {
    Table,
    Id,
    RepositoryId,
    Size,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum GcBlobReviewQueue {
    Table,
    Digest,
    ReviewAfter,
    ReviewCount,
    Event,
    CreatedAt,
}

#[derive(Iden)]
enum GcManifestReviewQueue {
    Table,
    RepositoryId,
    ManifestId,
    ReviewAfter,
    ReviewCount,
    Event,
    CreatedAt,
}

fn id(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn ts(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn ts_null(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn counter(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

fn fk(
    from_table: impl IntoIden + 'static,
    from_col: impl IntoIden + 'static,
    to_table: impl IntoIden + 'static,
    to_col: impl IntoIden + 'static,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(on_delete)
        .to_owned()
}

fn index(
    table: impl IntoIden + 'static,
    name: &str,
    cols: Vec<DynIden>,
    unique: bool,
) -> IndexCreateStatement {
    let mut i = Index::create();
    i.if_not_exists().name(name).table(table);
    for c in cols {
        i.col(c);
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, Restrict};
        m.create_table(
            Table::create()
                .table(Repositories::Table)
                .if_not_exists()
                .col(id(Repositories::Id))
                .col(
                    ColumnDef::new(Repositories::Name)
                        .string_len(255)
                        .not_null()
                        .unique_key(),
                )
                .col(ts(Repositories::CreatedAt))
                .col(ts_null(Repositories::LastPushedAt))
                .col(ts_null(Repositories::LastPulledAt))
                .col(counter(Repositories::PullCount))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Blobs::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Blobs::Digest)
                        .string_len(200)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Blobs::Size).big_integer().not_null())
                .col(ts(Blobs::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RepositoryBlobs::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(RepositoryBlobs::RepositoryId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RepositoryBlobs::BlobDigest)
                        .string_len(200)
                        .not_null(),
                )
                .col(ts(RepositoryBlobs::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(RepositoryBlobs::RepositoryId)
                        .col(RepositoryBlobs::BlobDigest),
                )
                .foreign_key(&mut fk(
                    RepositoryBlobs::Table,
                    RepositoryBlobs::RepositoryId,
                    Repositories::Table,
                    Repositories::Id,
                    Cascade,
                ))
                .foreign_key(&mut fk(
                    RepositoryBlobs::Table,
                    RepositoryBlobs::BlobDigest,
                    Blobs::Table,
                    Blobs::Digest,
                    Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            RepositoryBlobs::Table,
            "idx_repository_blobs_digest",
            vec![RepositoryBlobs::BlobDigest.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Manifests::Table)
                .if_not_exists()
                .col(id(Manifests::Id))
                .col(
                    ColumnDef::new(Manifests::RepositoryId)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Manifests::Digest).string_len(200).not_null())
                .col(
                    ColumnDef::new(Manifests::MediaType)
                        .string_len(255)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Manifests::ArtifactType)
                        .string_len(255)
                        .null(),
                )
                .col(
                    ColumnDef::new(Manifests::SubjectDigest)
                        .string_len(200)
                        .null(),
                )
                .col(
                    ColumnDef::new(Manifests::ConfigDigest)
                        .string_len(200)
                        .null(),
                )
                .col(ColumnDef::new(Manifests::Payload).binary().not_null())
                .col(ColumnDef::new(Manifests::Size).big_integer().not_null())
                .col(ts(Manifests::CreatedAt))
                .col(ts_null(Manifests::LastPulledAt))
                .col(counter(Manifests::PullCount))
                .foreign_key(&mut fk(
                    Manifests::Table,
                    Manifests::RepositoryId,
                    Repositories::Table,
                    Repositories::Id,
                    Cascade,
                ))
                // A blob still used as a config can never be deleted underneath a manifest.
                .foreign_key(&mut fk(
                    Manifests::Table,
                    Manifests::ConfigDigest,
                    Blobs::Table,
                    Blobs::Digest,
                    Restrict,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            Manifests::Table,
            "idx_manifests_repository_digest",
            vec![
                Manifests::RepositoryId.into_iden(),
                Manifests::Digest.into_iden(),
            ],
            true,
        ))
        .await?;
        m.create_index(index(
            Manifests::Table,
            "idx_manifests_subject",
            vec![
                Manifests::RepositoryId.into_iden(),
                Manifests::SubjectDigest.into_iden(),
            ],
            false,
        ))
        .await?;
        m.create_index(index(
            Manifests::Table,
            "idx_manifests_config",
            vec![Manifests::ConfigDigest.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Layers::Table)
                .if_not_exists()
                .col(id(Layers::Id))
                .col(
                    ColumnDef::new(Layers::RepositoryId)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Layers::ManifestId).big_integer().not_null())
                .col(
                    ColumnDef::new(Layers::BlobDigest)
                        .string_len(200)
                        .not_null(),
                )
                .col(ColumnDef::new(Layers::MediaType).string_len(255).not_null())
                .col(ColumnDef::new(Layers::Size).big_integer().not_null())
                .foreign_key(&mut fk(
                    Layers::Table,
                    Layers::ManifestId,
                    Manifests::Table,
                    Manifests::Id,
                    Cascade,
                ))
                // Same guard as the config column: a referenced layer's row cannot vanish.
                .foreign_key(&mut fk(
                    Layers::Table,
                    Layers::BlobDigest,
                    Blobs::Table,
                    Blobs::Digest,
                    Restrict,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            Layers::Table,
            "idx_layers_manifest",
            vec![Layers::ManifestId.into_iden()],
            false,
        ))
        .await?;
        m.create_index(index(
            Layers::Table,
            "idx_layers_blob",
            vec![Layers::BlobDigest.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(ManifestReferences::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ManifestReferences::RepositoryId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ManifestReferences::ParentId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ManifestReferences::ChildId)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(ManifestReferences::ParentId)
                        .col(ManifestReferences::ChildId),
                )
                .foreign_key(&mut fk(
                    ManifestReferences::Table,
                    ManifestReferences::ParentId,
                    Manifests::Table,
                    Manifests::Id,
                    Cascade,
                ))
                // A child cannot be deleted while an index still lists it.
                .foreign_key(&mut fk(
                    ManifestReferences::Table,
                    ManifestReferences::ChildId,
                    Manifests::Table,
                    Manifests::Id,
                    Restrict,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            ManifestReferences::Table,
            "idx_manifest_references_child",
            vec![ManifestReferences::ChildId.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Tags::Table)
                .if_not_exists()
                .col(id(Tags::Id))
                .col(ColumnDef::new(Tags::RepositoryId).big_integer().not_null())
                .col(ColumnDef::new(Tags::Name).string_len(128).not_null())
                .col(ColumnDef::new(Tags::ManifestId).big_integer().not_null())
                .col(ts(Tags::CreatedAt))
                .col(ts(Tags::UpdatedAt))
                .col(ts_null(Tags::LastPulledAt))
                .col(counter(Tags::PullCount))
                .foreign_key(&mut fk(
                    Tags::Table,
                    Tags::RepositoryId,
                    Repositories::Table,
                    Repositories::Id,
                    Cascade,
                ))
                .foreign_key(&mut fk(
                    Tags::Table,
                    Tags::ManifestId,
                    Manifests::Table,
                    Manifests::Id,
                    Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            Tags::Table,
            "idx_tags_repository_name",
            vec![Tags::RepositoryId.into_iden(), Tags::Name.into_iden()],
            true,
        ))
        .await?;
        m.create_index(index(
            Tags::Table,
            "idx_tags_manifest",
            vec![Tags::ManifestId.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Uploads::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Uploads::Id)
                        .string_len(36)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Uploads::RepositoryId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Uploads::Size)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(ts(Uploads::CreatedAt))
                .col(ts(Uploads::UpdatedAt))
                .foreign_key(&mut fk(
                    Uploads::Table,
                    Uploads::RepositoryId,
                    Repositories::Table,
                    Repositories::Id,
                    Cascade,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(GcBlobReviewQueue::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(GcBlobReviewQueue::Digest)
                        .string_len(200)
                        .not_null()
                        .primary_key(),
                )
                .col(ts(GcBlobReviewQueue::ReviewAfter))
                .col(
                    ColumnDef::new(GcBlobReviewQueue::ReviewCount)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(GcBlobReviewQueue::Event)
                        .string_len(64)
                        .not_null(),
                )
                .col(ts(GcBlobReviewQueue::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            GcBlobReviewQueue::Table,
            "idx_gc_blob_review_after",
            vec![GcBlobReviewQueue::ReviewAfter.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(GcManifestReviewQueue::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(GcManifestReviewQueue::RepositoryId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(GcManifestReviewQueue::ManifestId)
                        .big_integer()
                        .not_null(),
                )
                .col(ts(GcManifestReviewQueue::ReviewAfter))
                .col(
                    ColumnDef::new(GcManifestReviewQueue::ReviewCount)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(GcManifestReviewQueue::Event)
                        .string_len(64)
                        .not_null(),
                )
                .col(ts(GcManifestReviewQueue::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(GcManifestReviewQueue::RepositoryId)
                        .col(GcManifestReviewQueue::ManifestId),
                )
                .foreign_key(&mut fk(
                    GcManifestReviewQueue::Table,
                    GcManifestReviewQueue::ManifestId,
                    Manifests::Table,
                    Manifests::Id,
                    Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            GcManifestReviewQueue::Table,
            "idx_gc_manifest_review_after",
            vec![GcManifestReviewQueue::ReviewAfter.into_iden()],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            GcManifestReviewQueue::Table.into_iden(),
            GcBlobReviewQueue::Table.into_iden(),
            Uploads::Table.into_iden(),
            Tags::Table.into_iden(),
            ManifestReferences::Table.into_iden(),
            Layers::Table.into_iden(),
            Manifests::Table.into_iden(),
            RepositoryBlobs::Table.into_iden(),
            Blobs::Table.into_iden(),
            Repositories::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
