//! Cleanup policies on schedule: a `cron`-driven scheduler that runs due
//! policies per repository with a per-run cap and resumption, and `berth-gc cleanup`
//! (`--dry-run` previews; without it, runs a project's policy now).
//!
//! - **Statuses** (GitLab's `expiration_policy_cleanup_status`): `cleanup_scheduled` when a
//!   policy's `next_run_at` passes; `cleanup_ongoing` while a worker holds the repository
//!   under a lease; `cleanup_unfinished` when a slice was cut short (per-run cap, shutdown,
//!   lost lease), resumed by the next tick; `cleanup_unscheduled` when done, with
//!   `last_cleanup_deleted_tags_count`.
//! - **`next_run_at`** moves on by the cadence from the tick that schedules the run (as
//!   GitLab does when it enqueues a run): the repositories' own rows carry the run to its
//!   end, so nothing is lost if a worker stops half way.
//! - **Consistency**: a run judges every tag as of its start (`expiration_policy_started_at`),
//!   the same instant in every slice; tags pushed or moved after it are left alone.
//! - **Preview**: the API and `--dry-run` call the same [`berth_db::cleanup_plan::evaluate`]
//!   the run uses, as of the instant the next run judges at.

mod clock;
mod runner;

use std::str::FromStr;

use anyhow::Context;
use berth_core::cleanup::Decision;
use berth_core::cleanup_policy::Policy;
use berth_db::entity::projects;
use berth_db::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use chrono::Utc;
use tokio::sync::watch;

pub use clock::{Clock, parse_offset};
pub use runner::{Cleaner, SliceReport};

/// The parsed `cleanup_schedule`.
pub fn schedule(cfg: &crate::Config) -> anyhow::Result<cron::Schedule> {
    cron::Schedule::from_str(&cfg.cleanup_schedule)
        .with_context(|| format!("BERTH_CLEANUP_SCHEDULE {:?}", cfg.cleanup_schedule))
}

/// One tick: schedule due policies, then one slice of each waiting repository (a
/// repository cut short waits for the next tick). Returns the slices run.
pub async fn tick(
    cleaner: &Cleaner,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<SliceReport>> {
    cleaner.schedule_due().await?;
    let mut done = Vec::new();
    let mut ran: Vec<i64> = Vec::new();
    while !*stop.borrow() {
        match cleaner.run_once(stop, None, &ran, false).await? {
            Some(r) => {
                ran.push(r.repository_id);
                done.push(r);
            }
            None => break,
        }
    }
    Ok(done)
}

/// The scheduler: tick on `cleanup_schedule` until `stop` turns true. Spawn it from the
/// long-running `berth-gc run`.
pub async fn scheduler(cfg: crate::Config, db: berth_db::Db, mut stop: watch::Receiver<bool>) {
    let setup = schedule(&cfg).and_then(|s| Ok((s, Cleaner::new(db, &cfg)?)));
    let (schedule, cleaner) = match setup {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cleanup scheduler not started");
            return;
        }
    };
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = tick(&cleaner, &stop).await {
            tracing::error!(error = format!("{e:#}"), "cleanup tick failed");
        }
    }
}

/// `berth-gc cleanup --project <path> [--dry-run]`: print, per repository, each tag's
/// verdict as the next run would give it; without `--dry-run`, run the policy on the
/// project now (even if disabled; the schedule is untouched) and print what went.
pub async fn run_cli(cfg: crate::Config, project: &str, dry_run: bool) -> anyhow::Result<()> {
    let db = berth_db::connect(cfg.database_url.expose_secret()).await?;
    berth_db::migrate(&db).await?;
    let p = projects::Entity::find()
        .filter(projects::Column::FullPath.eq(project.trim_matches('/')))
        .one(&db.read)
        .await?
        .with_context(|| format!("no project {project}"))?;
    let cleaner = Cleaner::new(db.clone(), &cfg)?;
    if dry_run {
        print!("{}", preview_text(&cleaner, &p).await?);
        return Ok(());
    }
    let ids = cleaner.schedule_project_now(&p).await?;
    let (_tx, stop) = watch::channel(false);
    let mut total = 0;
    while let Some(r) = cleaner.run_once(&stop, Some(&ids), &[], true).await? {
        println!(
            "{}\tdeleted {}\t{}",
            r.repository,
            r.deleted,
            if r.complete { "complete" } else { "unfinished" }
        );
        total += r.deleted;
    }
    println!("deleted {total} tags");
    Ok(())
}

/// The dry run's text: `<repository>:<tag>\t<delete|keep>\t<reason>` lines per repository.
pub async fn preview_text(cleaner: &Cleaner, p: &projects::Model) -> anyhow::Result<String> {
    use std::fmt::Write;
    let c = &cleaner.db().read;
    let row = berth_db::expiration_policies::get(c, p.id).await?;
    let next_run_at = row.as_ref().and_then(|r| r.next_run_at);
    let policy = row
        .as_ref()
        .map_or_else(Policy::default, berth_db::expiration_policies::policy);
    let rules = berth_db::cleanup_plan::rules(&policy)?;
    let now = cleaner.clock().now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# project {} policy enabled={} next_run_at={}",
        p.full_path,
        policy.enabled,
        next_run_at.map_or("-".to_owned(), |t| t.to_rfc3339())
    );
    for repo in berth_db::repository_cleanups::project_repositories(c, p).await? {
        let as_of = berth_db::cleanup_plan::next_run_as_of(c, repo.id, next_run_at, now).await?;
        let plan = berth_db::cleanup_plan::evaluate(c, p.id, repo.id, &rules, as_of).await?;
        let _ = writeln!(
            out,
            "# {} as_of={} delete={}",
            repo.name,
            as_of.to_rfc3339(),
            plan.doomed().len()
        );
        for v in &plan.verdicts {
            let (verdict, reason) = match &v.decision {
                Decision::Delete => ("delete", ""),
                Decision::Keep(r) => ("keep", r.as_str()),
            };
            let _ = writeln!(out, "{}:{}\t{verdict}\t{reason}", repo.name, v.tag.name);
        }
    }
    Ok(out)
}
