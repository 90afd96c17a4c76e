//! A scratch PostgreSQL database for a benchmark run, created and dropped with `psql`
//! (shared by berth-gc-bench and berth-tags-bench).

use std::process::Stdio;

use anyhow::Context;

/// A scratch PostgreSQL database, dropped when this is.
pub struct PgDatabase {
    server: String,
    name: String,
    /// `<server>/<name>`.
    pub url: String,
}

impl PgDatabase {
    /// Creates `<prefix>_<pid>` on `server` (a URL without a database).
    pub fn create(server: &str, prefix: &str) -> anyhow::Result<Self> {
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("{prefix}_{}", std::process::id());
        psql(&server, &format!("CREATE DATABASE {name}"))?;
        let url = format!("{server}/{name}");
        Ok(PgDatabase { server, name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.server, &sql) {
            eprintln!("could not drop database {}: {e:#}", self.name);
        }
    }
}

fn psql(server: &str, sql: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
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
    Ok(())
}
