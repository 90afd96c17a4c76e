//! Deduplicated storage usage (unique blobs of tagged manifests, through indexes too) and
//! the storage limits checked on push (a push past a limit is refused with `QUOTA_EXCEEDED`).
//!
//! Usage of a scope (a repository, a project, a root namespace) is the sum of the sizes of
//! the distinct blobs (configs and layers) that its live manifests reference ([`crate::liveness`]:
//! tagged, children of live indexes, subjects and referrers of live manifests). Content
//! that is not live does not count; open upload sessions count with the bytes they hold.
//! Each figure is one SQL statement: the liveness CTE
//! walks from the tagged manifests, then collects blob digests from
//! `layers` (`idx_layers_manifest`) and `manifests.config_digest` with `UNION` (which
//! deduplicates), and sums `blobs.size` (primary key). The same SQL runs on SQLite and
//! PostgreSQL.
//!
//! A project's repositories are its path and the names below it: a project path is never a
//! namespace path (they share one path space), so no other project's repositories can lie
//! below it. A root namespace's repositories are the names below its path, across all its
//! projects and subgroups. Both are a `LIKE 'path/%'` over `repositories.name` (a scan of
//! that table: repositories are few next to tags and layers); everything after it can go
//! through indexes. Measured on 2,000 repositories, 50,000 manifests, 250,000 layers and
//! 40,000 tags, for a root namespace of 1,000 tagged manifests: SQLite about 40 ms CPU
//! (index searches throughout); PostgreSQL 9 ms for a project, 130-145 ms for the root
//! namespace with the default `random_page_cost` (the planner prefers hash joins over
//! `layers` at that size) and 40 ms with an SSD setting (1.1), which picks
//! `idx_layers_manifest`.
//!
//! Limits: a project and its root namespace may each carry `registry_storage_limit`
//! (bytes). Limits on nested groups are not enforced: GitLab, too, applies namespace
//! storage limits at the root namespace only.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, Statement, Value,
};

use crate::namespaces::like_escape;

/// Which repositories a figure covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// One repository, by id.
    Repository(i64),
    /// The repositories at or under a path: a project's full path, or a root namespace's.
    Path(&'a str),
}

/// Deduplicated bytes of one repository.
pub async fn repository_usage(c: &impl ConnectionTrait, repository_id: i64) -> Result<i64, DbErr> {
    usage(c, Scope::Repository(repository_id), None).await
}

/// Deduplicated bytes of the project at `full_path` (all its repositories).
pub async fn project_usage(c: &impl ConnectionTrait, full_path: &str) -> Result<i64, DbErr> {
    usage(c, Scope::Path(full_path), None).await
}

/// Deduplicated bytes of the root namespace at `path` (every project under it, subgroups
/// included).
pub async fn namespace_usage(c: &impl ConnectionTrait, path: &str) -> Result<i64, DbErr> {
    usage(c, Scope::Path(path), None).await
}

/// Deduplicated bytes of `manifest_ids` and, through indexes, their children (whether
/// tagged or not).
pub async fn manifests_usage(c: &impl ConnectionTrait, manifest_ids: &[i64]) -> Result<i64, DbErr> {
    if manifest_ids.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; manifest_ids.len()].join(", ");
    let seed = format!("SELECT id FROM manifests WHERE id IN ({marks})");
    let values = manifest_ids.iter().map(|id| Value::from(*id)).collect();
    sum(c, &seed, values).await
}

/// A tag as it would be if a pending write had not happened: `(repository_id, tag name)`
/// is left out and, when the tag existed before, the manifest it pointed at counts instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagOverride<'a> {
    /// The tag's repository.
    pub repository_id: i64,
    /// The tag's name.
    pub tag: &'a str,
    /// The manifest the tag pointed at before the write, if it existed.
    pub previous: Option<i64>,
}

/// Deduplicated bytes of `scope`, optionally with one tag as it was before a pending write.
pub async fn usage(
    c: &impl ConnectionTrait,
    scope: Scope<'_>,
    before: Option<TagOverride<'_>>,
) -> Result<i64, DbErr> {
    let mut values: Vec<Value> = Vec::new();
    let mut seed = match scope {
        Scope::Repository(id) => {
            values.push(id.into());
            "SELECT t.manifest_id AS id FROM tags t WHERE t.repository_id = ?".to_owned()
        }
        Scope::Path(path) => {
            values.push(path.into());
            values.push(format!("{}/%", like_escape(path)).into());
            "SELECT t.manifest_id AS id FROM tags t \
             JOIN repositories r ON r.id = t.repository_id \
             WHERE (r.name = ? OR r.name LIKE ? ESCAPE '\\')"
                .to_owned()
        }
    };
    // Open upload sessions hold space too (capped per repository, expired by berth-gc).
    let uploads = uploads_bytes(c, scope).await?;
    if let Some(o) = before {
        seed.push_str(" AND NOT (t.repository_id = ? AND t.name = ?)");
        values.push(o.repository_id.into());
        values.push(o.tag.into());
        if let Some(previous) = o.previous {
            seed.push_str(" UNION SELECT id FROM manifests WHERE id = ?");
            values.push(previous.into());
        }
    }
    Ok(sum(c, &seed, values).await?.saturating_add(uploads))
}

/// Bytes held by the open upload sessions of `scope`'s repositories.
async fn uploads_bytes(c: &impl ConnectionTrait, scope: Scope<'_>) -> Result<i64, DbErr> {
    let (sql, values): (&str, Vec<Value>) = match scope {
        Scope::Repository(id) => (
            "SELECT CAST(COALESCE(SUM(u.size), 0) AS BIGINT) AS bytes FROM uploads u \
             WHERE u.repository_id = ?",
            vec![id.into()],
        ),
        Scope::Path(path) => (
            "SELECT CAST(COALESCE(SUM(u.size), 0) AS BIGINT) AS bytes FROM uploads u \
             JOIN repositories r ON r.id = u.repository_id \
             WHERE (r.name = ? OR r.name LIKE ? ESCAPE '\\')",
            vec![path.into(), format!("{}/%", like_escape(path)).into()],
        ),
    };
    let row = Bytes::find_by_statement(statement(c.get_database_backend(), sql, values))
        .one(c)
        .await?;
    Ok(row.map_or(0, |r| r.bytes))
}

#[derive(Debug, FromQueryResult)]
struct Bytes {
    bytes: i64,
}

/// The deduplicated blob bytes reachable from the manifests `seed` (a `SELECT` of one
/// column `id`) selects.
async fn sum(c: &impl ConnectionTrait, seed: &str, values: Vec<Value>) -> Result<i64, DbErr> {
    // What is live is defined once, in `liveness`; `used` collects each digest once.
    let sql = format!(
        "WITH RECURSIVE {}, \
         used(digest) AS ( \
           SELECT l.blob_digest FROM layers l JOIN live ON l.manifest_id = live.id \
           UNION \
           SELECT m.config_digest FROM manifests m JOIN live ON m.id = live.id \
           WHERE m.config_digest IS NOT NULL \
         ) \
         SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS bytes \
         FROM used JOIN blobs b ON b.digest = used.digest",
        crate::liveness::live_cte(seed)
    );
    let row = Bytes::find_by_statement(statement(c.get_database_backend(), &sql, values))
        .one(c)
        .await?;
    Ok(row.map_or(0, |r| r.bytes))
}

/// `sql` written with `?` placeholders, numbered `$n` for PostgreSQL.
pub(crate) fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DatabaseBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(ch);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Which kind of scope a limit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// A project's own limit.
    Project,
    /// The root namespace's limit (a top-level group or a personal namespace).
    Namespace,
}

/// One storage limit that applies to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Project or root namespace.
    pub kind: LimitKind,
    /// Its full path (the scope usage is computed over).
    pub path: String,
    /// The cap in bytes.
    pub bytes: i64,
}

/// The project owning a repository, its root namespace and the limits on both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The owning project's id.
    pub project_id: i64,
    /// The root namespace's id (absent only for a project whose namespace row is missing).
    pub root_namespace_id: Option<i64>,
    /// The limits set, project first; empty when none applies.
    pub limits: Vec<Limit>,
}

#[derive(Debug, FromQueryResult)]
struct LimitRow {
    project_id: i64,
    project_path: String,
    project_limit: Option<i64>,
    root_id: Option<i64>,
    root_path: Option<String>,
    root_limit: Option<i64>,
}

/// The limits that apply to a push into repository `name`, in one query: the owning project
/// (the longest project path `name` equals or extends by at most two segments, as
/// [`crate::access::project_for_repository`]) joined with the root namespace (the first
/// segment). `None` when no project owns `name`.
pub async fn limits_for_repository(
    c: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<Limits>, DbErr> {
    let segments: Vec<&str> = name.split('/').collect();
    let candidates: Vec<String> = (0..=2)
        .filter(|extra| segments.len() >= 2 + extra)
        .map(|extra| segments[..segments.len() - extra].join("/"))
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let marks = vec!["?"; candidates.len()].join(", ");
    let sql = format!(
        "SELECT p.id AS project_id, p.full_path AS project_path, \
                p.registry_storage_limit AS project_limit, \
                n.id AS root_id, n.full_path AS root_path, \
                n.registry_storage_limit AS root_limit \
         FROM projects p LEFT JOIN namespaces n ON n.full_path = ? \
         WHERE p.full_path IN ({marks})"
    );
    let mut values: Vec<Value> = vec![segments[0].into()];
    values.extend(candidates.into_iter().map(Value::from));
    let rows = LimitRow::find_by_statement(statement(c.get_database_backend(), &sql, values))
        .all(c)
        .await?;
    let Some(row) = rows.into_iter().max_by_key(|r| r.project_path.len()) else {
        return Ok(None);
    };
    let mut limits = Vec::new();
    if let Some(bytes) = row.project_limit {
        limits.push(Limit {
            kind: LimitKind::Project,
            path: row.project_path,
            bytes,
        });
    }
    if let (Some(bytes), Some(path)) = (row.root_limit, row.root_path) {
        limits.push(Limit {
            kind: LimitKind::Namespace,
            path,
            bytes,
        });
    }
    Ok(Some(Limits {
        project_id: row.project_id,
        root_namespace_id: row.root_id,
        limits,
    }))
}

/// Inside the manifest write transaction, before anything is written: hold the root
/// namespace's row until the transaction ends, so pushes under one root namespace that a
/// limit covers take turns.
///
/// Why this bounds usage (a push must not exceed a limit): every push under a limited root
/// namespace (or into a limited project, whose root is the same) takes this lock first, then
/// writes its manifest and tag, then computes usage and refuses if it exceeds a limit. The next
/// such push waits here until the previous one commits or rolls back; on PostgreSQL (READ
/// COMMITTED) each statement after the wait sees everything committed before it, so its usage
/// figure includes the previous push and the two cannot both pass on stale totals. On SQLite
/// [`crate::Db::begin_write`] already serialises write transactions, so nothing is needed.
/// Pushes therefore never take usage over a limit (an admin lowering a limit can; a push that
/// read "no limit" just before an admin set one can add itself once). Tag and manifest
/// deletions do not take the lock: they only lower usage. Pushes that no limit covers never
/// lock. `tests/e2e/quota.rs` races eight pushes into two projects of one limited namespace;
/// without this lock PostgreSQL lets six or seven of them in instead of the three that fit.
pub async fn lock_root_namespace(c: &impl ConnectionTrait, root_id: i64) -> Result<(), DbErr> {
    if c.get_database_backend() == DatabaseBackend::Postgres {
        c.execute(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT id FROM namespaces WHERE id = $1 FOR UPDATE",
            [root_id.into()],
        ))
        .await?;
    }
    Ok(())
}

/// A limit a pending write would exceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The limit.
    pub limit: Limit,
    /// Usage of the limit's scope with the write.
    pub usage: i64,
}

/// Inside the write transaction, after the tag `pending` names has been written: the first
/// of `limits` that usage now exceeds, if any. A write that does not grow a scope's usage
/// (retagging to an image already counted, or one that frees space) passes even over a
/// limit, so a lowered limit never blocks housekeeping; the "before" figure is computed
/// only when a limit is exceeded.
pub async fn exceeded(
    c: &impl ConnectionTrait,
    limits: &[Limit],
    pending: TagOverride<'_>,
) -> Result<Option<Exceeded>, DbErr> {
    for limit in limits {
        let scope = Scope::Path(&limit.path);
        let after = usage(c, scope, None).await?;
        if after <= limit.bytes {
            continue;
        }
        let before = usage(c, scope, Some(pending)).await?;
        if after > before {
            return Ok(Some(Exceeded {
                limit: limit.clone(),
                usage: after,
            }));
        }
    }
    Ok(None)
}

/// Set or clear (`None`) a project's storage limit.
pub async fn set_project_limit(
    c: &impl ConnectionTrait,
    project_id: i64,
    bytes: Option<i64>,
) -> Result<(), DbErr> {
    use crate::entity::projects::{Column, Entity};
    Entity::update_many()
        .col_expr(Column::RegistryStorageLimit, bytes.into())
        .filter(Column::Id.eq(project_id))
        .exec(c)
        .await?;
    Ok(())
}

/// Set or clear (`None`) a namespace's storage limit (enforced on root namespaces only).
pub async fn set_namespace_limit(
    c: &impl ConnectionTrait,
    namespace_id: i64,
    bytes: Option<i64>,
) -> Result<(), DbErr> {
    use crate::entity::namespaces::{Column, Entity};
    Entity::update_many()
        .col_expr(Column::RegistryStorageLimit, bytes.into())
        .filter(Column::Id.eq(namespace_id))
        .exec(c)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        let s = statement(
            DatabaseBackend::Postgres,
            "a = ? AND b LIKE ? ESCAPE '\\'",
            vec![1i64.into(), "x".into()],
        );
        assert_eq!(s.sql, "a = $1 AND b LIKE $2 ESCAPE '\\'");
        let s = statement(DatabaseBackend::Sqlite, "a = ?", vec![1i64.into()]);
        assert_eq!(s.sql, "a = ?");
    }
}
