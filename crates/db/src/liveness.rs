//! What is alive: the one definition of live registry content, used by garbage collection,
//! storage usage, quota checks and cleanup previews alike.
//!
//! A manifest is live when it is reachable from a tag of its repository through these
//! edges, all within one repository:
//!
//! - an index to each of its children (a multi-platform image keeps its platforms);
//! - a referrer to its subject (a tagged signature keeps the untagged image it signs);
//! - a subject to each of its referrers (a signature or SBOM lives as long as the image it
//!   describes, as in Harbor and zot, and is counted and deleted with it).
//!
//! This is the least such set: two untagged manifests that only keep each other (an image
//! and its signature, once the image's tag is gone) are not live. Blobs are live when a live
//! manifest references them as config or layer.
//!
//! Besides liveness, garbage collection keeps one structural rule: a manifest that an index
//! still stored references is not deleted before the index (deleting it would break the
//! index if someone tagged the index again); the index goes first, then its children are
//! reviewed.
//!
//! The definition is one SQL fragment (a recursive CTE, the same text on SQLite and
//! PostgreSQL): [`live_cte`] builds it from a seed query, and [`usage`](crate::usage) and
//! [`is_live`] run it. Its cost is one pass over the edges of the repositories the seed
//! touches.

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use crate::entity::manifests;

/// The CTE definitions (to follow `WITH RECURSIVE`) of `seed(id)`, the manifests `seed_sql`
/// selects (one column `id`), and `live(id)`, every manifest reachable from them.
pub(crate) fn live_cte(seed_sql: &str) -> String {
    // `repos` bounds the edge scan to the seed's repositories. `edges` lists the three edge
    // kinds as (src, dst); PostgreSQL allows the recursive CTE to be named only once in
    // its recursive term, hence one edge relation rather than three recursive branches.
    // `UNION` (not `UNION ALL`) in `live` visits each manifest once, so the walk ends even
    // on a malformed cycle.
    format!(
        "seed(id) AS ({seed_sql}), \
         repos(id) AS (SELECT DISTINCT m.repository_id FROM manifests m JOIN seed ON m.id = seed.id), \
         subjects(referrer, subject) AS ( \
           SELECT r.id, s.id FROM manifests r \
           JOIN repos ON r.repository_id = repos.id \
           JOIN manifests s ON s.repository_id = r.repository_id AND s.digest = r.subject_digest \
           WHERE r.subject_digest IS NOT NULL \
         ), \
         edges(src, dst) AS ( \
           SELECT mr.parent_id, mr.child_id FROM manifest_references mr \
           JOIN repos ON mr.repository_id = repos.id \
           UNION ALL SELECT referrer, subject FROM subjects \
           UNION ALL SELECT subject, referrer FROM subjects \
         ), \
         live(id) AS ( \
           SELECT id FROM seed \
           UNION \
           SELECT e.dst FROM edges e JOIN live ON e.src = live.id \
         )"
    )
}

#[derive(Debug, FromQueryResult)]
struct Count {
    n: i64,
}

/// Is manifest `m` live (reachable from a tag of its repository)?
pub async fn is_live(c: &impl ConnectionTrait, m: &manifests::Model) -> Result<bool, DbErr> {
    let sql = format!(
        "WITH RECURSIVE {} SELECT CAST(COUNT(*) AS BIGINT) AS n FROM live WHERE id = ?",
        live_cte("SELECT t.manifest_id AS id FROM tags t WHERE t.repository_id = ?")
    );
    let values: Vec<Value> = vec![m.repository_id.into(), m.id.into()];
    let row = Count::find_by_statement(crate::usage::statement(
        c.get_database_backend(),
        &sql,
        values,
    ))
    .one(c)
    .await?;
    Ok(row.is_some_and(|r| r.n > 0))
}
