//! `berth-gc usage`: deduplicated storage usage per root namespace, per project
//! and (with `--repositories`) per repository.
//!
//! Why there are no stored counters to keep up to date: every figure Berth shows or enforces
//! (the API's `storage` fields, the push-time limit check in `berth_db::usage::exceeded`) is
//! computed live by one SQL statement ([`berth_db::usage`]: a recursive CTE from the tagged
//! manifests through index children to distinct layer and config blobs), measured at tens
//! of milliseconds for a root namespace of 1,000 tagged manifests. A live figure is always
//! exact, so "incremental upkeep on push/delete" is the query itself and there is nothing
//! that can drift. Counters would only be needed if that query became too slow for the
//! API at some scale; then this command is where they would be rebuilt.
//!
//! What `--recompute` therefore does: it computes every figure a second time, from
//! scratch and independently of that SQL — plain single-table reads of tags, index
//! references, layers, configs and blob sizes, with deduplication in this process
//! ([`recompute`]) — and cross-checks it against the live query, reporting each mismatch
//! and failing (non-zero exit) if there is one. That guards the CTE, and the path rules of
//! scopes, against regressions on real data.

mod recompute;

use std::collections::BTreeMap;

use anyhow::Context;
use berth_db::{Db, usage, usage_walk};
use serde::Serialize;

/// Root namespaces per page.
const PAGE: u64 = 100;

/// `berth-gc usage` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Also compute every figure independently from the raw tables and report mismatches.
    #[arg(long)]
    pub recompute: bool,
    /// Also list each repository.
    #[arg(long)]
    pub repositories: bool,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// One figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `namespace`, `project` or `repository`.
    pub scope: &'static str,
    /// Full path (repository name for repositories).
    pub path: String,
    /// Deduplicated bytes, as the live query computes them.
    pub bytes: i64,
    /// The independent computation's figure (`--recompute` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recomputed: Option<i64>,
}

impl Row {
    /// Whether the two computations disagree.
    pub fn mismatch(&self) -> bool {
        self.recomputed.is_some_and(|r| r != self.bytes)
    }
}

/// Run the command: print figures, fail if `--recompute` finds a mismatch.
pub async fn run(cfg: crate::Config, args: Args, migrate: bool) -> anyhow::Result<()> {
    let db = berth_db::connect(cfg.database_url.expose_secret())
        .await
        .context("connecting to the database")?;
    if migrate {
        // Every Berth binary applies pending migrations at start; a brand-new database then
        // checks as empty.
        berth_db::migrate(&db)
            .await
            .context("applying migrations")?;
    }
    let rows = collect(&db, &args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render(&rows));
    }
    let mismatches = rows.iter().filter(|r| r.mismatch()).count();
    if mismatches > 0 {
        anyhow::bail!(
            "{mismatches} usage figure(s) differ between the live query and the recomputation"
        );
    }
    Ok(())
}

/// Every figure, root namespace by root namespace: the namespace, then each project
/// followed by its repositories (with `--repositories`), then repositories no project owns.
pub async fn collect(db: &Db, args: &Args) -> anyhow::Result<Vec<Row>> {
    let c = &db.read;
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = usage_walk::root_namespaces(c, after, PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        for (_, root) in page {
            let projects = usage_walk::projects_under(c, &root).await?;
            let repos = if args.repositories || args.recompute {
                usage_walk::repositories_under(c, &root).await?
            } else {
                Vec::new()
            };
            let owners = owners(&projects, &repos);
            let again = if args.recompute {
                Some(recompute::root(c, &projects, &repos, &owners).await?)
            } else {
                None
            };
            rows.push(Row {
                scope: "namespace",
                path: root.clone(),
                bytes: usage::namespace_usage(c, &root).await?,
                recomputed: again.as_ref().map(|a| a.root),
            });
            let mut repo_rows = BTreeMap::<Option<usize>, Vec<Row>>::new();
            if args.repositories || args.recompute {
                for (i, (id, name)) in repos.iter().enumerate() {
                    let row = Row {
                        scope: "repository",
                        path: name.clone(),
                        bytes: usage::repository_usage(c, *id).await?,
                        recomputed: again.as_ref().map(|a| a.repositories[i]),
                    };
                    // Without --repositories only disagreeing repositories are shown.
                    if args.repositories || row.mismatch() {
                        repo_rows.entry(owners[i]).or_default().push(row);
                    }
                }
            }
            for (p, (_, path)) in projects.iter().enumerate() {
                rows.push(Row {
                    scope: "project",
                    path: path.clone(),
                    bytes: usage::project_usage(c, path).await?,
                    recomputed: again.as_ref().map(|a| a.projects[p]),
                });
                rows.extend(repo_rows.remove(&Some(p)).unwrap_or_default());
            }
            rows.extend(repo_rows.remove(&None).unwrap_or_default());
        }
    }
    Ok(rows)
}

/// For each repository, the index in `projects` of the project owning it: the longest
/// project path it equals or lies below (`None` if no project does).
fn owners(projects: &[(i64, String)], repos: &[(i64, String)]) -> Vec<Option<usize>> {
    repos
        .iter()
        .map(|(_, name)| {
            projects
                .iter()
                .enumerate()
                .filter(|(_, (_, p))| {
                    name == p
                        || name
                            .strip_prefix(p.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                })
                .max_by_key(|(_, (_, p))| p.len())
                .map(|(i, _)| i)
        })
        .collect()
}

/// Lines for people: one per figure, indented by scope, with mismatches marked.
pub fn render(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for r in rows {
        let indent = match r.scope {
            "namespace" => "",
            "project" => "  ",
            _ => "    ",
        };
        let _ = write!(
            out,
            "{indent}{:<10} {:<48} {:>14} bytes ({})",
            r.scope,
            r.path,
            r.bytes,
            human(r.bytes)
        );
        match r.recomputed {
            Some(again) if again != r.bytes => {
                let _ = write!(out, "  MISMATCH: recomputed {again} bytes");
            }
            Some(_) => out.push_str("  recomputed: same"),
            None => {}
        }
        out.push('\n');
    }
    let mismatches = rows.iter().filter(|r| r.mismatch()).count();
    let namespaces = rows.iter().filter(|r| r.scope == "namespace").count();
    let projects = rows.iter().filter(|r| r.scope == "project").count();
    let _ = write!(
        out,
        "summary: {namespaces} root namespace(s), {projects} project(s)"
    );
    if rows.iter().any(|r| r.recomputed.is_some()) {
        let _ = write!(out, ", {mismatches} mismatch(es) after recompute");
    }
    out.push('\n');
    out
}

/// `1536` → `1.5 KiB`.
fn human(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_belong_to_the_longest_project_path() {
        let projects = vec![(1, "acme/app".to_owned()), (2, "acme/app2".to_owned())];
        let repos = vec![
            (1, "acme/app".to_owned()),
            (2, "acme/app/worker".to_owned()),
            (3, "acme/app2/x".to_owned()),
            (4, "acme/orphan".to_owned()),
        ];
        assert_eq!(
            owners(&projects, &repos),
            vec![Some(0), Some(0), Some(1), None]
        );
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024), "3.0 MiB");
    }
}
