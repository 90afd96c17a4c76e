//! The store against the `blobs` table: orphan files (bytes without a row) and rows whose
//! bytes are missing.

use std::time::SystemTime;

use berth_blobstore::BlobStore;
use berth_core::Digest;
use berth_db::{Db, consistency};

use super::{Finding, MissingBytes, PAGE, Report, Settings, User};

/// Store digests per `IN (...)` lookup.
const CHUNK: usize = 500;

/// Both directions. The store is listed first; rows are then read page by page.
pub(super) async fn check(
    db: &Db,
    store: &dyn BlobStore,
    s: &Settings,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut listed: Vec<String> = store.list().await?.iter().map(Digest::to_string).collect();
    listed.sort_unstable();
    orphans(db, store, s, &listed, report).await?;
    missing(db, store, s, &listed, report).await?;
    Ok(())
}

async fn orphans(
    db: &Db,
    store: &dyn BlobStore,
    s: &Settings,
    listed: &[String],
    report: &mut Report,
) -> anyhow::Result<()> {
    let now = SystemTime::now();
    for chunk in listed.chunks(CHUNK) {
        let present = consistency::blobs_present(&db.read, chunk.to_vec()).await?;
        let present: std::collections::HashSet<String> = present.into_iter().collect();
        for digest in chunk.iter().filter(|d| !present.contains(*d)) {
            let Ok(parsed) = digest.parse::<Digest>() else {
                continue;
            };
            // Gone since the listing (the online GC deletes rows, then bytes): not an orphan.
            let Some(modified) = store.modified(&parsed).await? else {
                continue;
            };
            let age = now.duration_since(modified).unwrap_or_default();
            if age < s.grace {
                report.young_unrecorded_files += 1;
                continue;
            }
            let size = store.stat(&parsed).await?.unwrap_or(0);
            let mut repaired = false;
            if s.repair {
                repaired = delete_orphan(db, store, &parsed).await?;
            }
            report.orphan_files.push(Finding {
                subject: digest.clone(),
                detail: format!(
                    "{size} bytes, no blob row, last written {}s ago",
                    age.as_secs()
                ),
                repaired,
            });
        }
    }
    Ok(())
}

/// Delete an orphan's bytes if it still has no row. An upload of the same content that
/// finds the file in place inserts its row without rewriting the file, so the row is read
/// again just before and after the delete; a row seen afterwards (a window of
/// milliseconds) is logged loudly and the next check reports it as missing bytes.
async fn delete_orphan(db: &Db, store: &dyn BlobStore, digest: &Digest) -> anyhow::Result<bool> {
    let key = digest.to_string();
    if berth_db::blobs::find(&db.read, &key).await?.is_some() {
        return Ok(false);
    }
    store.delete(digest).await?;
    tracing::info!(blob.digest = %key, decision = "delete", reason = "orphan file", "check repair");
    if berth_db::blobs::find(&db.read, &key).await?.is_some() {
        tracing::error!(blob.digest = %key,
            "a blob row appeared while its orphan file was deleted; re-push the blob");
    }
    Ok(true)
}

async fn missing(
    db: &Db,
    store: &dyn BlobStore,
    s: &Settings,
    listed: &[String],
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = consistency::blob_page(&db.read, after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (digest, size) in page {
            if listed.binary_search(&digest).is_ok() {
                continue;
            }
            // Not in the listing: committed after it, or truly gone. `stat` decides.
            let Ok(parsed) = digest.parse::<Digest>() else {
                continue;
            };
            if store.stat(&parsed).await?.is_some() {
                continue;
            }
            let users = consistency::blob_users(&db.read, &digest).await?;
            let mut repaired = false;
            if s.repair && users.is_empty() {
                repaired = delete_row(db, store, &parsed).await?;
            }
            if !users.is_empty() {
                tracing::error!(blob.digest = %digest, manifests = users.len(),
                    "blob bytes missing for referenced manifests: data loss");
            }
            report.missing_bytes.push(MissingBytes {
                digest,
                size,
                users: users
                    .into_iter()
                    .map(|u| User {
                        repository: u.repository,
                        manifest: u.manifest,
                        tag: u.tag,
                    })
                    .collect(),
                repaired,
            });
        }
    }
    Ok(())
}

/// Delete the row of an unreferenced blob whose bytes are gone, unless the bytes came back
/// (a re-upload) before the transaction commits.
async fn delete_row(db: &Db, store: &dyn BlobStore, digest: &Digest) -> anyhow::Result<bool> {
    let key = digest.to_string();
    let txn = db.begin_write().await?;
    let deleted = consistency::delete_unreferenced_blob(&txn, &key).await?;
    if !deleted || store.stat(digest).await?.is_some() {
        txn.rollback().await?;
        return Ok(false);
    }
    txn.commit().await?;
    tracing::info!(blob.digest = %key, decision = "delete", reason = "row without bytes, unreferenced",
        "check repair");
    Ok(true)
}
