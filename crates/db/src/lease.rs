//! The lease by which one worker holds a row of background work (a cleanup run in
//! `container_repository_cleanups`, a job in `jobs`): the row is held while `lease_owner` is
//! the worker's id and `lease_until` is in the future. Cleanup claims are one conditional
//! UPDATE, so of several workers racing for a row exactly one wins (jobs are taken with
//! `SKIP LOCKED` instead, see [`crate::background_jobs`]); every later write re-checks
//! ownership inside the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, UpdateMany,
};

/// Where an entity keeps its lease.
pub(crate) struct Lease<E: EntityTrait> {
    /// The row's key.
    pub key: E::Column,
    /// The row's state.
    pub status: E::Column,
    /// The state of a held row.
    pub held: &'static str,
    /// The holder's id.
    pub owner: E::Column,
    /// When the lease runs out.
    pub until: E::Column,
    /// The progress count [`Lease::renew`] adds to.
    pub count: E::Column,
}

impl<E: EntityTrait> Lease<E> {
    /// No lease, or one that ran out before `now`.
    pub(crate) fn free(&self, now: DateTime<Utc>) -> Condition {
        Condition::any()
            .add(self.until.is_null())
            .add(self.until.lt(now))
    }

    /// Row `key`, held by `owner`.
    pub(crate) fn held_by(&self, key: i64, owner: &str) -> Condition {
        Condition::all()
            .add(self.key.eq(key))
            .add(self.owner.eq(owner))
            .add(self.status.eq(self.held))
    }

    /// Try `candidates` in order, each with one conditional UPDATE that still requires
    /// `claimable`, setting the held state, `owner` and `lease_until` plus what `extra`
    /// adds. Returns the key of the first row won.
    pub(crate) async fn claim(
        &self,
        c: &impl ConnectionTrait,
        candidates: impl IntoIterator<Item = i64>,
        owner: &str,
        lease_until: DateTime<Utc>,
        claimable: Condition,
        extra: impl Fn(UpdateMany<E>) -> UpdateMany<E>,
    ) -> Result<Option<i64>, DbErr> {
        for key in candidates {
            let q = E::update_many()
                .col_expr(self.status, Expr::value(self.held))
                .col_expr(self.owner, Expr::value(owner))
                .col_expr(self.until, Expr::value(lease_until));
            let res = extra(q)
                .filter(self.key.eq(key))
                .filter(claimable.clone())
                .exec(c)
                .await?;
            if res.rows_affected == 1 {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// Inside the caller's transaction: extend `owner`'s lease on row `key` and add
    /// `deleted` to its count. `false` when `owner` no longer holds it (roll back).
    pub(crate) async fn renew(
        &self,
        c: &impl ConnectionTrait,
        key: i64,
        owner: &str,
        deleted: u64,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let res = E::update_many()
            .col_expr(self.until, Expr::value(lease_until))
            .col_expr(
                self.count,
                Expr::col(self.count).add(i64::try_from(deleted).unwrap_or(i64::MAX)),
            )
            .filter(self.held_by(key, owner))
            .exec(c)
            .await?;
        Ok(res.rows_affected == 1)
    }
}
