//! Starting, probing and stopping the two registries.
//!
//! Each registry runs as a child process on a free loopback port with its own fresh data
//! directory, logs going to a file there, and is killed at the end of its round.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use tokio::process::{Child, Command};

use crate::auth::{self, Keys};

/// How long a registry may take to answer its readiness probe.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Kind {
    /// berth-registry.
    Berth,
    /// CNCF Distribution (`docker-registry`).
    Distribution,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Berth => "berth",
            Kind::Distribution => "distribution",
        })
    }
}

/// The binaries to launch.
#[derive(Debug, Clone)]
pub struct Launch {
    berth: PathBuf,
    distribution: PathBuf,
}

impl Launch {
    /// Picks the Berth binary (flag, else `$CARGO_TARGET_DIR/release`, else beside this
    /// executable, which is where `cargo run --release` put us) and checks that the
    /// binaries of the registries in `kinds` exist.
    pub fn resolve(
        berth: Option<PathBuf>,
        distribution: PathBuf,
        kinds: &[Kind],
    ) -> anyhow::Result<Self> {
        let berth = match berth {
            Some(p) => p,
            None => match std::env::var_os("CARGO_TARGET_DIR") {
                Some(dir) => PathBuf::from(dir).join("release").join("berth-registry"),
                None => std::env::current_exe()?
                    .parent()
                    .context("this executable has no directory")?
                    .join("berth-registry"),
            },
        };
        if kinds.contains(&Kind::Berth) {
            anyhow::ensure!(
                berth.is_file(),
                "berth-registry not found at {} (build it with `cargo build --release -p \
                 berth-registry`, pass --berth-bin, or run with --only distribution)",
                berth.display()
            );
            eprintln!("berth binary: {}", berth.display());
        }
        if kinds.contains(&Kind::Distribution) {
            anyhow::ensure!(
                distribution.is_file(),
                "Distribution not found at {} (apt-get install docker-registry, pass \
                 --distribution-bin, or run with --only berth)",
                distribution.display()
            );
        }
        Ok(Launch {
            berth,
            distribution,
        })
    }
}

/// A running registry.
pub struct Registry {
    /// Which one.
    pub kind: Kind,
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base: String,
    child: Child,
    log: PathBuf,
}

impl Registry {
    /// Starts `kind` with its storage under `dir` (created here, must be fresh) and waits
    /// until it answers.
    pub async fn start(
        kind: Kind,
        launch: &Launch,
        keys: &Keys,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join("registry.log");
        let mut cmd = match kind {
            Kind::Berth => berth_command(&launch.berth, keys, dir, &addr),
            Kind::Distribution => {
                distribution_command(&launch.distribution, keys, dir, &addr).await?
            }
        };
        let out = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // If the bench dies or errors out, the registry must not outlive it.
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {kind} ({:?})", cmd.as_std().get_program()))?;
        let mut reg = Registry {
            kind,
            base: format!("http://{addr}"),
            child,
            log,
        };
        reg.wait_ready().await?;
        Ok(reg)
    }

    /// Polls the readiness probe: Berth's `/-/health`, or Distribution's `/v2/` answering
    /// 401 (it has no health route outside its debug server, and 401 proves the token
    /// configuration loaded).
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let (url, want) = match self.kind {
            Kind::Berth => (format!("{}/-/health", self.base), 200),
            Kind::Distribution => (format!("{}/v2/", self.base), 401),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "{} exited during start-up ({status}); log:\n{}",
                    self.kind,
                    self.log_tail(30)
                );
            }
            if let Ok(resp) = client.get(&url).send().await
                && resp.status().as_u16() == want
            {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!(
                    "{} did not answer {url} with {want} within {START_TIMEOUT:?}; log:\n{}",
                    self.kind,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak resident set size (VmHWM) of the process so far, in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the registry has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .context("no VmHWM in /proc/<pid>/status")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// The last `n` lines of the registry's log, for error reports.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills the registry and waits for it to be gone. SIGKILL rather than a graceful stop:
    /// its data directory is thrown away anyway, and waiting for drains would only slow the
    /// bench down.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// Berth configured entirely through `BERTH_*` environment variables.
fn berth_command(bin: &Path, keys: &Keys, dir: &Path, addr: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("serve");
    // Berth reads every BERTH_* variable as configuration; ones inherited from the caller's
    // shell must not change what is measured.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BERTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "BERTH_DATABASE_URL",
        format!("sqlite://{}/berth.db?mode=rwc", dir.display()),
    )
    .env(
        "BERTH_STORAGE_URL",
        format!("file://{}", dir.join("blobs").display()),
    )
    .env("BERTH_REGISTRY_ADDR", addr)
    .env("BERTH_TOKEN_PUBLIC_KEY_FILE", &keys.public)
    .env("BERTH_TOKEN_ISSUER", auth::ISSUER)
    .env("BERTH_TOKEN_SERVICE", auth::SERVICE)
    .env("BERTH_TOKEN_REALM", auth::REALM)
    .env("BERTH_REGISTRY_PROJECTS", "bench/big,bench/small")
    .env("RUST_LOG", "warn");
    cmd
}

/// Distribution with a YAML config written into `dir`.
async fn distribution_command(
    bin: &Path,
    keys: &Keys,
    dir: &Path,
    addr: &str,
) -> anyhow::Result<Command> {
    // The in-memory blob descriptor cache is in the config Debian and the official image
    // ship, so it is what a Distribution deployment normally runs with. The fixed secret
    // only silences the warning about generating a random one.
    let config = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: {addr}\n  secret: berth-bench-not-a-secret\n\
         auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
         rootcertbundle: {cert}\n",
        storage = dir.join("storage").display(),
        realm = auth::REALM,
        service = auth::SERVICE,
        issuer = auth::ISSUER,
        cert = keys.cert.display(),
    );
    let path = dir.join("config.yml");
    tokio::fs::write(&path, config).await?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve").arg(&path);
    Ok(cmd)
}

/// A loopback port nobody listens on right now. There is a window between releasing it and
/// the registry binding it; on a benchmark machine nothing else races for ports.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
