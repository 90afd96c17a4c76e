//! Stale upload sessions: rows untouched for `--upload-age`, and upload files that old whose
//! row is gone or equally stale. `--repair` removes both.

use std::collections::BTreeMap;

use berth_blobstore::BlobStore;
use berth_db::{Db, consistency};
use chrono::Utc;

use super::{Finding, PAGE, Report, Settings};

pub(super) async fn check(
    db: &Db,
    store: &dyn BlobStore,
    s: &Settings,
    report: &mut Report,
) -> anyhow::Result<()> {
    let cutoff = Utc::now() - chrono::Duration::from_std(s.upload_age)?;
    // id -> (has a stale row, detail)
    let mut stale: BTreeMap<String, (bool, String)> = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = consistency::stale_uploads(&db.read, cutoff, &after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id.clone();
        for u in page {
            let detail = format!(
                "session row of repository id {} ({} bytes), last touched {}",
                u.repository_id,
                u.size,
                u.updated_at.to_rfc3339()
            );
            stale.insert(u.id, (true, detail));
        }
    }
    let files = store.stale_uploads(s.upload_age).await?;
    let unknown: Vec<String> = files
        .iter()
        .filter(|id| !stale.contains_key(*id))
        .cloned()
        .collect();
    for chunk in unknown.chunks(500) {
        let with_row = consistency::uploads_present(&db.read, chunk.to_vec()).await?;
        for id in chunk.iter().filter(|id| !with_row.contains(id)) {
            stale.insert(
                id.clone(),
                (false, "upload file without a session row".into()),
            );
        }
    }
    for (id, (row, detail)) in stale {
        let mut repaired = false;
        if s.repair {
            if row {
                berth_db::uploads::delete(&db.write, &id).await?;
            }
            // A row id the store would not accept as a file name has no file to delete.
            match store.delete_upload(&id).await {
                Ok(()) | Err(berth_blobstore::StoreError::InvalidUploadId) => repaired = true,
                Err(e) => return Err(e.into()),
            }
        }
        report.stale_uploads.push(Finding {
            subject: id,
            detail,
            repaired,
        });
    }
    Ok(())
}
