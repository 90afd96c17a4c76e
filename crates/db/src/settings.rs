//! Instance-wide settings held in the database (`settings`: name, value, updated_at), so a
//! value several processes must agree on has one source of truth.
//!
//! The GC review delay is the first: every write that may leave a blob or manifest
//! unreferenced queues it with `review_after = now + delay`, in the registry, in berth-auth
//! and in berth-gc. berth-gc owns the value: it records its configured delay at start
//! ([`record_review_delay`]). The registry and berth-auth follow the recorded value through
//! a [`ReviewDelay`] cache, re-read every few seconds; they only *seed* it from their own
//! configuration when no process has recorded one yet (a fresh database whose berth-gc has
//! not started), so a system started in any order works and converges on berth-gc's value.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, StatementBuilder};

use crate::Db;

/// The review delay's row, in whole milliseconds.
pub const GC_REVIEW_DELAY_MS: &str = "gc_review_delay_ms";

fn table() -> Alias {
    Alias::new("settings")
}

/// Write `value` under `name`: replacing what is there when `overwrite`, otherwise only if
/// the name has no row yet (the first writer wins).
async fn put(
    c: &impl ConnectionTrait,
    name: &str,
    value: &str,
    overwrite: bool,
) -> Result<(), DbErr> {
    let conflict = if overwrite {
        OnConflict::column(Alias::new("name"))
            .update_columns([Alias::new("value"), Alias::new("updated_at")])
            .to_owned()
    } else {
        OnConflict::column(Alias::new("name"))
            .do_nothing()
            .to_owned()
    };
    let insert = Query::insert()
        .into_table(table())
        .columns([
            Alias::new("name"),
            Alias::new("value"),
            Alias::new("updated_at"),
        ])
        // Three columns, three values: `values_panic` cannot panic here.
        .values_panic([name.into(), value.into(), Utc::now().into()])
        .on_conflict(conflict)
        .to_owned();
    c.execute(StatementBuilder::build(&insert, &c.get_database_backend()))
        .await?;
    Ok(())
}

/// The value stored under `name`, if any.
async fn get(c: &impl ConnectionTrait, name: &str) -> Result<Option<String>, DbErr> {
    let select = Query::select()
        .column(Alias::new("value"))
        .from(table())
        .and_where(Expr::col(Alias::new("name")).eq(name))
        .to_owned();
    let row = c
        .query_one(StatementBuilder::build(&select, &c.get_database_backend()))
        .await?;
    row.map(|r| r.try_get::<String>("", "value")).transpose()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Record the GC review delay. berth-gc, the owner, overwrites; the registry and berth-auth
/// only seed an empty database (`overwrite = false`).
pub async fn record_review_delay(
    c: &impl ConnectionTrait,
    delay: Duration,
    overwrite: bool,
) -> Result<(), DbErr> {
    put(c, GC_REVIEW_DELAY_MS, &millis(delay).to_string(), overwrite).await
}

/// The recorded GC review delay, if one is recorded and readable.
pub async fn review_delay(c: &impl ConnectionTrait) -> Result<Option<Duration>, DbErr> {
    let Some(text) = get(c, GC_REVIEW_DELAY_MS).await? else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => {
            tracing::warn!(setting = GC_REVIEW_DELAY_MS, value = %text, "unreadable setting ignored");
            Ok(None)
        }
    }
}

/// How often a [`ReviewDelay`] re-reads the recorded value: a change berth-gc records
/// reaches every registry and berth-auth replica within this time.
pub const REVIEW_DELAY_REFRESH: Duration = Duration::from_secs(5);

/// The GC review delay as recorded in the database, cached in memory so the writes that
/// use it ([`ReviewDelay::get`]) cost nothing; a background task re-reads it every
/// `refresh` for as long as a clone of the cache is alive.
#[derive(Clone, Debug)]
pub struct ReviewDelay {
    millis: Arc<AtomicU64>,
}

impl ReviewDelay {
    /// Seed the delay with `seed` if none is recorded, load the recorded one and keep it
    /// fresh (see the module documentation for why the registry and auth only seed).
    pub async fn follow(db: &Db, seed: Duration, refresh: Duration) -> Result<Self, DbErr> {
        record_review_delay(&db.write, seed, false).await?;
        let current = review_delay(&db.read).await?.unwrap_or(seed);
        let cache = ReviewDelay::fixed(current);
        let weak = Arc::downgrade(&cache.millis);
        let db = db.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(refresh).await;
                let Some(millis) = weak.upgrade() else {
                    break;
                };
                match review_delay(&db.read).await {
                    Ok(Some(d)) => {
                        let old = millis.swap(self::millis(d), Ordering::Relaxed);
                        if old != self::millis(d) {
                            tracing::info!(
                                gc_review_delay_ms = self::millis(d),
                                "following the GC review delay berth-gc recorded"
                            );
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "re-reading the GC review delay failed; keeping the last one")
                    }
                }
            }
        });
        Ok(cache)
    }

    /// A delay that never changes (tests, tools).
    pub fn fixed(delay: Duration) -> Self {
        ReviewDelay {
            millis: Arc::new(AtomicU64::new(millis(delay))),
        }
    }

    /// The delay to apply now.
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}
