//! Usage facts (issue 4): pull counts and last pull times of tags and repositories,
//! collected in memory and written in one transaction per flush interval — never one
//! database write per pull.
//!
//! Durability: counts live only in this process until the next flush. A crash (or a kill
//! without graceful shutdown) loses at most one `usage_flush_interval` of counts; graceful
//! shutdown flushes what is pending. A row deleted in the meantime simply updates nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use berth_db::Db;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

/// Pulls not yet written: (repository id, tag name or `None` for a pull by digest)
/// → (count, last pull time).
type Pending = HashMap<(i64, Option<String>), (i64, DateTime<Utc>)>;

/// Counts successful manifest GETs in memory until the next flush.
#[derive(Default)]
pub struct PullCounter {
    pending: Mutex<Pending>,
}

impl PullCounter {
    /// Count one successful manifest GET.
    pub fn record(&self, repository_id: i64, tag: Option<&str>, at: DateTime<Utc>) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let e = map
            .entry((repository_id, tag.map(str::to_owned)))
            .or_insert((0, at));
        e.0 += 1;
        if at > e.1 {
            e.1 = at;
        }
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Put counts back after a failed flush, so the next one retries them.
    fn restore(&self, taken: Pending) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (k, (n, at)) in taken {
            let e = map.entry(k).or_insert((0, at));
            e.0 += n;
            if at > e.1 {
                e.1 = at;
            }
        }
    }

    /// Write the pending counts in one write transaction. On error they are kept for the
    /// next flush.
    pub async fn flush(&self, db: &Db) -> Result<(), DbErr> {
        let taken = self.take();
        if taken.is_empty() {
            return Ok(());
        }
        match write(db, &taken).await {
            Ok(()) => {
                // One write transaction per flush, however many pulls it carries.
                metrics::counter!("berth_registry_usage_flushes_total").increment(1);
                let pulls: i64 = taken.values().map(|(n, _)| n).sum();
                metrics::counter!("berth_registry_usage_pulls_flushed_total")
                    .increment(u64::try_from(pulls).unwrap_or(0));
                Ok(())
            }
            Err(e) => {
                self.restore(taken);
                Err(e)
            }
        }
    }

    /// Flush every `interval` until `stop` fires, then flush once more.
    pub async fn run(
        self: std::sync::Arc<Self>,
        db: Db,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = self.flush(&db).await {
                tracing::warn!(error = %e, "writing pull counts failed; retrying next interval");
            }
        }
        if let Err(e) = self.flush(&db).await {
            tracing::warn!(error = %e, "writing pull counts at shutdown failed");
        }
    }
}

async fn write(db: &Db, taken: &Pending) -> Result<(), DbErr> {
    use berth_db::entity::{repositories, tags};
    let mut per_repo: HashMap<i64, (i64, DateTime<Utc>)> = HashMap::new();
    for ((repo, _), (n, at)) in taken {
        let e = per_repo.entry(*repo).or_insert((0, *at));
        e.0 += n;
        if *at > e.1 {
            e.1 = *at;
        }
    }
    let txn = db.begin_write().await?;
    for ((repo, tag), (n, at)) in taken {
        let Some(tag) = tag else { continue };
        tags::Entity::update_many()
            .col_expr(
                tags::Column::PullCount,
                Expr::col(tags::Column::PullCount).add(*n),
            )
            .col_expr(
                tags::Column::LastPulledAt,
                latest(tags::Column::LastPulledAt, *at),
            )
            .filter(tags::Column::RepositoryId.eq(*repo))
            .filter(tags::Column::Name.eq(tag.as_str()))
            .exec(&txn)
            .await?;
    }
    for (repo, (n, at)) in &per_repo {
        repositories::Entity::update_many()
            .col_expr(
                repositories::Column::PullCount,
                Expr::col(repositories::Column::PullCount).add(*n),
            )
            .col_expr(
                repositories::Column::LastPulledAt,
                latest(repositories::Column::LastPulledAt, *at),
            )
            .filter(repositories::Column::Id.eq(*repo))
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

/// `CASE WHEN col IS NULL OR col < $at THEN $at ELSE col END`, the time bound as a value
/// (portable across SQLite and PostgreSQL, unlike `GREATEST`/`MAX`).
fn latest<C: ColumnTrait>(col: C, at: DateTime<Utc>) -> sea_orm::sea_query::SimpleExpr {
    Expr::case(
        Expr::col(col).is_null().or(Expr::col(col).lt(at)),
        Expr::val(at),
    )
    .finally(Expr::col(col))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latest_time_per_key() {
        let c = PullCounter::default();
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::seconds(1);
        c.record(1, Some("v1"), t1);
        c.record(1, Some("v1"), t0);
        c.record(1, None, t0);
        c.record(2, Some("v1"), t0);
        let taken = c.take();
        assert_eq!(taken[&(1, Some("v1".into()))], (2, t1));
        assert_eq!(taken[&(1, None)], (1, t0));
        assert_eq!(taken[&(2, Some("v1".into()))], (1, t0));
        assert!(c.take().is_empty());
        // A failed flush puts its counts back, merged with pulls since.
        c.record(1, Some("v1"), t0);
        c.restore(taken);
        assert_eq!(c.take()[&(1, Some("v1".into()))], (3, t1));
    }
}
