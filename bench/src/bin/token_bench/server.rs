//! The `berth-auth` process under test: started on a free loopback port with a clean
//! environment, awaited until ready, and asked for its pid, peak RSS and log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::proc_stats;

/// How long `berth-auth` may take to answer `/-/ready`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `berth-auth serve`.
pub struct Auth {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The process; killed when this is dropped.
    pub child: Child,
    log: PathBuf,
}

impl Auth {
    /// Starts `berth-auth serve` on `database_url` and waits for `/-/ready`.
    pub async fn start(bin: &Path, database_url: &str, dir: &Path) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        drop(listener);
        let log = dir.join("auth.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = auth_command(bin, database_url);
        cmd.arg("serve")
            .env("BERTH_AUTH_ADDR", addr.to_string())
            .env("BERTH_AUTH_URL", format!("http://{addr}"))
            .env("BERTH_ROOT_PASSWORD", "bench-root-password-123")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut auth = Auth {
            base: format!("http://{addr}"),
            child,
            log,
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let ready = format!("{}/-/ready", auth.base);
        let started = Instant::now();
        loop {
            if let Some(status) = auth.child.try_wait()? {
                anyhow::bail!(
                    "berth-auth exited during start-up ({status}); log:\n{}",
                    auth.log_tail(30)
                );
            }
            if let Ok(resp) = client.get(&ready).send().await
                && resp.status() == StatusCode::OK
            {
                return Ok(auth);
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!(
                    "berth-auth did not answer {ready} within {START_TIMEOUT:?}; log:\n{}",
                    auth.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("berth-auth has exited")
    }

    /// Peak resident set size (VmHWM) so far, in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        proc_stats::peak_rss_mib(self.pid()?)
    }

    /// The last `n` lines of the log, for error reports.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// `berth-auth` with the caller's `BERTH_*` variables removed (they would change what is
/// measured), the database set and quiet logs.
pub fn auth_command(bin: &Path, database_url: &str) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BERTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("BERTH_DATABASE_URL", database_url)
        .env("RUST_LOG", "warn");
    cmd
}
