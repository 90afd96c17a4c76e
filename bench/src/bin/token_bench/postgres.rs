//! The `--postgres` database: a scratch database created and dropped with `psql`, and the
//! count of transactions each kind of token request runs in it.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use crate::load::Variant;

/// A scratch PostgreSQL database, dropped when this is.
pub struct PgDatabase {
    server: String,
    /// The database's name.
    pub name: String,
    /// `<server>/<name>`, for berth-auth.
    pub url: String,
}

impl PgDatabase {
    /// Creates a database with a fresh name on `server` (a URL without a database).
    pub fn create(server: &str) -> anyhow::Result<Self> {
        let server = server.trim_end_matches('/').to_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let name = format!("berth_token_bench_{}_{nanos:x}", std::process::id());
        psql(&server, &format!("CREATE DATABASE {name}"))?;
        let url = format!("{server}/{name}");
        Ok(PgDatabase { server, name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        match psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            Ok(()) => eprintln!("dropped database {}", self.name),
            Err(e) => eprintln!("could not drop database {}: {e:#}", self.name),
        }
    }
}

/// Committed plus rolled-back transactions of `db` so far, from `pg_stat_database`.
fn pg_transactions(db: &PgDatabase) -> anyhow::Result<u64> {
    let out = psql_output(
        &db.server,
        &format!(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{}'",
            db.name
        ),
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("pg_stat_database answered {out:?}"))
}

/// Transactions per request of each variant: its request sent `probe_requests` times one
/// after the other between two readings of the database's transaction count. A backend
/// publishes its counts when it goes idle, but no more than once a second; counts held
/// back then are published after 10 s of idleness, hence the long pauses before reading.
pub async fn pg_transactions_per_request(
    variants: &[Variant],
    db: &PgDatabase,
) -> anyhow::Result<Vec<f64>> {
    const SETTLE: Duration = Duration::from_millis(11_500);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    tokio::time::sleep(SETTLE).await;
    let mut last = pg_transactions(db)?;
    let mut per_request = Vec::new();
    for v in variants {
        for _ in 0..v.probe_requests {
            let mut req = client.get(&v.url);
            if let Some(h) = &v.auth {
                req = req.header(AUTHORIZATION, h.clone());
            }
            let resp = req.send().await?;
            let status = resp.status();
            resp.bytes().await?;
            anyhow::ensure!(status == StatusCode::OK, "{} answered {status}", v.url);
        }
        tokio::time::sleep(SETTLE).await;
        let now = pg_transactions(db)?;
        per_request.push(now.saturating_sub(last) as f64 / f64::from(v.probe_requests));
        last = now;
    }
    Ok(per_request)
}

/// `psql <server>/postgres -c <sql>`, failing with its stderr.
fn psql(server: &str, sql: &str) -> anyhow::Result<()> {
    psql_output(server, sql).map(drop)
}

/// `psql -At <server>/postgres -c <sql>`: its stdout, or its stderr as the error.
fn psql_output(server: &str, sql: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("psql")
        .arg("-X")
        .arg("-q")
        .arg("-A")
        .arg("-t")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-d")
        .arg(format!("{server}/postgres"))
        .arg("-c")
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .context("running psql (is it installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "psql -c '{sql}' failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
