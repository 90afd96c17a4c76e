//! Seeding: `n` small unreferenced blobs, as the registry would leave them after uploads
//! nobody referenced — a file in the store, a `blobs` row and a due review row each.
//!
//! Files are written straight into the filesystem store's layout
//! (`<root>/blobs/sha256/<xx>/<hex>`) without the per-blob fsync the registry pays on
//! commit: seeding speed is not what is measured. Rows go in 1,000 per statement.

use std::path::Path;

use berth_core::Digest;
use berth_db::entity::{blobs, gc_blob_review_queue};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, Set};

/// Rows per `INSERT`.
const BATCH: usize = 1000;

/// The content of blob `i` (distinct per index and per run).
fn content(run: u32, i: usize) -> Vec<u8> {
    format!("berth-gc-bench run {run} blob {i}").into_bytes()
}

/// Write the files of `n` blobs under `store` (a `file://` store root); returns digests
/// and sizes.
pub fn files(store: &Path, n: usize) -> anyhow::Result<Vec<(Digest, usize)>> {
    let run = std::process::id();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let data = content(run, i);
        let digest = Digest::sha256(&data);
        let hex = digest.hex();
        let dir = store.join("blobs/sha256").join(&hex[..2]);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(hex), &data)?;
        out.push((digest, data.len()));
    }
    Ok(out)
}

/// Insert a `blobs` row and a review row due at `due` for each blob.
pub async fn rows(
    db: &berth_db::Db,
    blobs_: &[(Digest, usize)],
    due: DateTime<Utc>,
) -> anyhow::Result<()> {
    let now = Utc::now();
    for chunk in blobs_.chunks(BATCH) {
        let txn = db.begin_write().await?;
        blobs::Entity::insert_many(chunk.iter().map(|(d, size)| blobs::ActiveModel {
            digest: Set(d.to_string()),
            size: Set(*size as i64),
            created_at: Set(now),
        }))
        .exec_without_returning(&txn)
        .await?;
        gc_blob_review_queue::Entity::insert_many(chunk.iter().map(|(d, _)| {
            gc_blob_review_queue::ActiveModel {
                digest: Set(d.to_string()),
                review_after: Set(due),
                review_count: Set(0),
                event: Set("blob_upload".into()),
                created_at: Set(now),
            }
        }))
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
    }
    Ok(())
}

/// Number of files left under `<store>/blobs`.
pub fn count_files(store: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(t) if t.is_file() => 1,
                _ => 0,
            })
            .sum()
    }
    walk(&store.join("blobs"))
}
