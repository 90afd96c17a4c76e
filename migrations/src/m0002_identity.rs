//! Identity and access: users, nested groups (namespaces), projects, memberships,
//! personal/project/group access tokens (bot users hold the latter), deploy tokens, CI jobs
//! with their job-token allowlist, OAuth2 refresh tokens and the token signing keys.
//! Secrets are stored only as SHA-256 digests; passwords as argon2id hashes.

use sea_orm_migration::prelude::*;

/// Creates the identity tables.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_identity"
    }
}

#[derive(Iden)]
enum Users {
    Table,
    Id,
    Username,
    Email,
    Name,
    PasswordHash,
    Admin,
    Bot,
    State,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum Namespaces {
    Table,
    Id,
    ParentId,
    Path,
    FullPath,
    Name,
    Kind,
    OwnerUserId,
    Visibility,
    CreatedAt,
}

#[derive(Iden)]
enum Projects {
    Table,
    Id,
    NamespaceId,
    Path,
    FullPath,
    Name,
    Visibility,
    ContainerRegistryAccessLevel,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum Members {
    Table,
    Id,
    SourceType,
    SourceId,
    UserId,
    AccessLevel,
    ExpiresAt,
    CreatedAt,
}

#[derive(Iden)]
enum PersonalAccessTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenDigest,
    Scopes,
    ExpiresAt,
    Revoked,
    LastUsedAt,
    CreatedAt,
}

#[derive(Iden)]
enum DeployTokens {
    Table,
    Id,
    ProjectId,
    NamespaceId,
    Name,
    Username,
    TokenDigest,
    Scopes,
    ExpiresAt,
    Revoked,
    CreatedAt,
}

#[derive(Iden)]
enum CiJobs {
    Table,
    Id,
    ProjectId,
    UserId,
    TokenDigest,
    Status,
    RefName,
    CreatedAt,
    FinishedAt,
}

#[derive(Iden)]
enum JobTokenAllowlist {
    Table,
    Id,
    ProjectId,
    SourceProjectId,
    SourceNamespaceId,
    CreatedAt,
}

#[derive(Iden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    TokenDigest,
    Service,
    ExpiresAt,
    Revoked,
    CreatedAt,
}

#[derive(Iden)]
enum SigningKeys {
    Table,
    Id,
    Kid,
    Algorithm,
    PrivatePem,
    PublicPem,
    CreatedAt,
    RetiredAt,
}

fn id(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn text(c: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(c).string_len(len).not_null().to_owned()
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

fn flag(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .boolean()
        .not_null()
        .default(false)
        .to_owned()
}

fn fk(
    from_table: impl IntoIden + 'static,
    from_col: impl IntoIden + 'static,
    to_table: impl IntoIden + 'static,
    to_col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn unique(table: impl IntoIden + 'static, name: &str, cols: Vec<DynIden>) -> IndexCreateStatement {
    let mut i = Index::create();
    i.if_not_exists().name(name).table(table).unique();
    for c in cols {
        i.col(c);
    }
    i.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(id(Users::Id))
                .col(text(Users::Username, 255).unique_key())
                .col(text(Users::Email, 255).unique_key())
                .col(text(Users::Name, 255))
                .col(ColumnDef::new(Users::PasswordHash).string_len(255).null())
                .col(flag(Users::Admin))
                .col(flag(Users::Bot))
                .col(text(Users::State, 16).default("active"))
                .col(ts(Users::CreatedAt))
                .col(ts(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Namespaces::Table)
                .if_not_exists()
                .col(id(Namespaces::Id))
                .col(ColumnDef::new(Namespaces::ParentId).big_integer().null())
                .col(text(Namespaces::Path, 255))
                .col(text(Namespaces::FullPath, 255).unique_key())
                .col(text(Namespaces::Name, 255))
                // `group` or `user` (a user's personal namespace).
                .col(text(Namespaces::Kind, 16))
                .col(ColumnDef::new(Namespaces::OwnerUserId).big_integer().null())
                .col(text(Namespaces::Visibility, 16).default("private"))
                .col(ts(Namespaces::CreatedAt))
                .foreign_key(&mut fk(
                    Namespaces::Table,
                    Namespaces::ParentId,
                    Namespaces::Table,
                    Namespaces::Id,
                ))
                .foreign_key(&mut fk(
                    Namespaces::Table,
                    Namespaces::OwnerUserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Projects::Table)
                .if_not_exists()
                .col(id(Projects::Id))
                .col(
                    ColumnDef::new(Projects::NamespaceId)
                        .big_integer()
                        .not_null(),
                )
                .col(text(Projects::Path, 255))
                .col(text(Projects::FullPath, 255).unique_key())
                .col(text(Projects::Name, 255))
                .col(text(Projects::Visibility, 16).default("private"))
                .col(text(Projects::ContainerRegistryAccessLevel, 16).default("enabled"))
                .col(ts(Projects::CreatedAt))
                .col(ts(Projects::UpdatedAt))
                .foreign_key(&mut fk(
                    Projects::Table,
                    Projects::NamespaceId,
                    Namespaces::Table,
                    Namespaces::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Members::Table)
                .if_not_exists()
                .col(id(Members::Id))
                // `namespace` or `project`.
                .col(text(Members::SourceType, 16))
                .col(ColumnDef::new(Members::SourceId).big_integer().not_null())
                .col(ColumnDef::new(Members::UserId).big_integer().not_null())
                .col(ColumnDef::new(Members::AccessLevel).integer().not_null())
                .col(ts_null(Members::ExpiresAt))
                .col(ts(Members::CreatedAt))
                .foreign_key(&mut fk(
                    Members::Table,
                    Members::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(unique(
            Members::Table,
            "idx_members_source_user",
            vec![
                Members::SourceType.into_iden(),
                Members::SourceId.into_iden(),
                Members::UserId.into_iden(),
            ],
        ))
        .await?;
        m.create_table(
            Table::create()
                .table(PersonalAccessTokens::Table)
                .if_not_exists()
                .col(id(PersonalAccessTokens::Id))
                .col(
                    ColumnDef::new(PersonalAccessTokens::UserId)
                        .big_integer()
                        .not_null(),
                )
                .col(text(PersonalAccessTokens::Name, 255))
                .col(text(PersonalAccessTokens::TokenDigest, 64).unique_key())
                // Comma-separated scopes (`read_registry,write_registry`).
                .col(text(PersonalAccessTokens::Scopes, 255))
                .col(ts_null(PersonalAccessTokens::ExpiresAt))
                .col(flag(PersonalAccessTokens::Revoked))
                .col(ts_null(PersonalAccessTokens::LastUsedAt))
                .col(ts(PersonalAccessTokens::CreatedAt))
                .foreign_key(&mut fk(
                    PersonalAccessTokens::Table,
                    PersonalAccessTokens::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeployTokens::Table)
                .if_not_exists()
                .col(id(DeployTokens::Id))
                // Exactly one of project and namespace (group) is set.
                .col(ColumnDef::new(DeployTokens::ProjectId).big_integer().null())
                .col(
                    ColumnDef::new(DeployTokens::NamespaceId)
                        .big_integer()
                        .null(),
                )
                .col(text(DeployTokens::Name, 255))
                .col(text(DeployTokens::Username, 255))
                .col(text(DeployTokens::TokenDigest, 64).unique_key())
                .col(text(DeployTokens::Scopes, 255))
                .col(ts_null(DeployTokens::ExpiresAt))
                .col(flag(DeployTokens::Revoked))
                .col(ts(DeployTokens::CreatedAt))
                .foreign_key(&mut fk(
                    DeployTokens::Table,
                    DeployTokens::ProjectId,
                    Projects::Table,
                    Projects::Id,
                ))
                .foreign_key(&mut fk(
                    DeployTokens::Table,
                    DeployTokens::NamespaceId,
                    Namespaces::Table,
                    Namespaces::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CiJobs::Table)
                .if_not_exists()
                .col(id(CiJobs::Id))
                .col(ColumnDef::new(CiJobs::ProjectId).big_integer().not_null())
                .col(ColumnDef::new(CiJobs::UserId).big_integer().not_null())
                .col(text(CiJobs::TokenDigest, 64).unique_key())
                .col(text(CiJobs::Status, 16).default("running"))
                .col(ColumnDef::new(CiJobs::RefName).string_len(255).null())
                .col(ts(CiJobs::CreatedAt))
                .col(ts_null(CiJobs::FinishedAt))
                .foreign_key(&mut fk(
                    CiJobs::Table,
                    CiJobs::ProjectId,
                    Projects::Table,
                    Projects::Id,
                ))
                .foreign_key(&mut fk(
                    CiJobs::Table,
                    CiJobs::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JobTokenAllowlist::Table)
                .if_not_exists()
                .col(id(JobTokenAllowlist::Id))
                // The project whose registry the listed source may pull from.
                .col(
                    ColumnDef::new(JobTokenAllowlist::ProjectId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(JobTokenAllowlist::SourceProjectId)
                        .big_integer()
                        .null(),
                )
                .col(
                    ColumnDef::new(JobTokenAllowlist::SourceNamespaceId)
                        .big_integer()
                        .null(),
                )
                .col(ts(JobTokenAllowlist::CreatedAt))
                .foreign_key(&mut fk(
                    JobTokenAllowlist::Table,
                    JobTokenAllowlist::ProjectId,
                    Projects::Table,
                    Projects::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .if_not_exists()
                .col(id(RefreshTokens::Id))
                .col(
                    ColumnDef::new(RefreshTokens::UserId)
                        .big_integer()
                        .not_null(),
                )
                .col(text(RefreshTokens::TokenDigest, 64).unique_key())
                .col(text(RefreshTokens::Service, 255))
                .col(ts_null(RefreshTokens::ExpiresAt))
                .col(flag(RefreshTokens::Revoked))
                .col(ts(RefreshTokens::CreatedAt))
                .foreign_key(&mut fk(
                    RefreshTokens::Table,
                    RefreshTokens::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .if_not_exists()
                .col(id(SigningKeys::Id))
                .col(text(SigningKeys::Kid, 64).unique_key())
                .col(text(SigningKeys::Algorithm, 16))
                .col(ColumnDef::new(SigningKeys::PrivatePem).text().not_null())
                .col(ColumnDef::new(SigningKeys::PublicPem).text().not_null())
                .col(ts(SigningKeys::CreatedAt))
                // Set on rotation; the public key stays published until its tokens expire.
                .col(ts_null(SigningKeys::RetiredAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            SigningKeys::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            JobTokenAllowlist::Table.into_iden(),
            CiJobs::Table.into_iden(),
            DeployTokens::Table.into_iden(),
            PersonalAccessTokens::Table.into_iden(),
            Members::Table.into_iden(),
            Projects::Table.into_iden(),
            Namespaces::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
