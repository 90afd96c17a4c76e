//! Queue health: overdue and repeatedly failing review rows (reported), and dangling blobs
//! and manifests that no review row covers (enqueued by `--repair`).

use berth_db::Db;
use berth_db::consistency::{self, QueueFilter, QueueRows};
use berth_db::gc::{self, Event};
use chrono::Utc;

use super::{Finding, PAGE, QueueFinding, Report, SAMPLE, Settings};

pub(super) async fn check(db: &Db, s: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let now = Utc::now();
    let due = QueueFilter::DueBefore(now - chrono::Duration::from_std(s.overdue)?);
    let failing = QueueFilter::FailedAtLeast(s.failing_reviews);
    for (kind, filter) in [("overdue", due), ("failing", failing)] {
        let blobs = consistency::blob_queue_rows(&db.read, filter, SAMPLE).await?;
        push(report, "blob", kind, blobs);
        let manifests = consistency::manifest_queue_rows(&db.read, filter, SAMPLE).await?;
        push(report, "manifest", kind, manifests);
    }
    unqueued_blobs(db, s, report).await?;
    unqueued_manifests(db, s, report).await?;
    Ok(())
}

fn push(report: &mut Report, queue: &'static str, kind: &'static str, rows: QueueRows) {
    if rows.count == 0 {
        return;
    }
    report.queues.push(QueueFinding {
        queue,
        kind,
        count: rows.count,
        sample: rows
            .sample
            .into_iter()
            .map(|(key, due, n)| (key, due.to_rfc3339(), n))
            .collect(),
    });
}

fn review_after(s: &Settings) -> anyhow::Result<chrono::DateTime<Utc>> {
    Ok(Utc::now() + chrono::Duration::from_std(s.review_delay)?)
}

async fn unqueued_blobs(db: &Db, s: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = consistency::unqueued_blobs(&db.read, after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for digest in page {
            let mut repaired = false;
            if s.repair {
                // Enqueueing is always safe: the worker re-checks inside its transaction.
                let txn = db.begin_write().await?;
                gc::enqueue_blob(&txn, &digest, Event::Check, review_after(s)?, Utc::now()).await?;
                txn.commit().await?;
                repaired = true;
            }
            report.unqueued_blobs.push(Finding {
                subject: digest,
                detail: "no manifest references it and no review row covers it".into(),
                repaired,
            });
        }
    }
    Ok(())
}

async fn unqueued_manifests(db: &Db, s: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let mut after = 0;
    loop {
        let page = consistency::unqueued_manifests(&db.read, after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        for m in page {
            let mut repaired = false;
            if s.repair {
                let txn = db.begin_write().await?;
                gc::enqueue_manifest(
                    &txn,
                    m.repository_id,
                    m.id,
                    Event::Check,
                    review_after(s)?,
                    Utc::now(),
                )
                .await?;
                txn.commit().await?;
                repaired = true;
            }
            report.unqueued_manifests.push(Finding {
                subject: format!("{}@{}", m.repository, m.digest),
                detail: "untagged, not in an index, not a referrer's subject, no review row".into(),
                repaired,
            });
        }
    }
    Ok(())
}
