//! `berth-token-bench`: how many registry tokens per second `berth-auth` issues
//! (`GET /jwt/auth` with a personal access token, 16 concurrent clients), and where the
//! time goes.
//!
//! It builds nothing; build the release binaries first, then run it:
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/berth-target   # or wherever your target dir is
//! cargo build --release -p berth-auth -p berth-bench && $CARGO_TARGET_DIR/release/berth-token-bench
//! $CARGO_TARGET_DIR/release/berth-token-bench --postgres   # PostgreSQL at 127.0.0.1:5432
//! ```
//!
//! It starts `berth-auth serve` on a fresh SQLite database in a scratch directory (or, with
//! `--postgres`, a fresh PostgreSQL database it creates and drops with `psql`), sets up a
//! group, two projects, a developer and their PAT through the real CLI and API, then runs
//! these variants one after the other against the same process:
//!
//! * `login`: Basic `dev:<PAT>` without a scope, what `docker login` sends: SHA-256 of the
//!   token, one indexed lookup, the user; then an empty token is signed.
//! * `pat+scope`: the same plus `scope=repository:bench/app:pull,push`: the project by
//!   path, its namespace chain and the membership, then the ES256 signature.
//! * `anonymous`: no credentials, pull of the public `bench/pub`: grant and sign only.
//!   (Berth, like GitLab, refuses a public project in a private group, so the bench makes
//!   group `bench` public when the API says so; `bench/app` stays private.)
//! * `password`: Basic `dev:<password>` with the same scope as `pat+scope`, at a lower
//!   concurrency and for fewer seconds: argon2id dominates.
//!
//! For each it reports requests/s, latency percentiles and the CPU time the auth process
//! (and this client, and with `--postgres` the PostgreSQL backends serving the bench
//! database) spent per request, read from `/proc/<pid>/stat` at the edges of the measured
//! window, with the CPU everything else on the machine used meanwhile; plus in-process
//! costs of one ES256 signature and one SHA-256 of a token, and the auth process's peak
//! RSS. With `--postgres` it also counts the transactions each kind of request runs
//! (`pg_stat_database`, on a sequential probe after the load; it takes about a minute).
//! Client and server share the machine's cores, so the CPU figures per request say more
//! than the rate does; on a shared machine, `--rounds 3` keeps each variant's least
//! disturbed round.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

/// How long `berth-auth` may take to answer `/-/ready`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Password of the bench's developer user.
const DEV_PASSWORD: &str = "dev-password-123";
/// The service name `berth-auth` issues tokens for by default.
const SERVICE: &str = "container_registry";

/// Measure token issuance (`GET /jwt/auth`) of berth-auth.
#[derive(Parser, Debug)]
#[command(name = "berth-token-bench", version, about)]
struct Cli {
    /// Concurrent clients (one keep-alive connection each) for the token variants.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds per token variant.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before each variant's measured window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent clients for the password variant (argon2id is CPU- and memory-bound).
    #[arg(long, default_value_t = 4)]
    password_clients: usize,
    /// Measured seconds of the password variant (after a 1 s warm-up); 0 skips it.
    #[arg(long, default_value_t = 3)]
    password_seconds: u64,
    /// Run every variant this many times and report, per variant, the round with the least
    /// CPU used by other processes (for shared machines).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Use a fresh PostgreSQL database (created and dropped with psql) instead of SQLite.
    #[arg(long)]
    postgres: bool,
    /// PostgreSQL server for --postgres, without a database name.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// berth-auth binary; defaults to `$CARGO_TARGET_DIR/release/berth-auth`, else the
    /// `berth-auth` next to this binary.
    #[arg(long)]
    auth_bin: Option<PathBuf>,
    /// Directory for the scratch directory (SQLite database, auth log).
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.clients > 0 && cli.password_clients > 0 && cli.seconds > 0 && cli.rounds > 0,
        "--clients, --password-clients, --seconds and --rounds must be positive"
    );
    let bin = resolve_bin(cli.auth_bin.clone())?;
    let work = tempfile::Builder::new()
        .prefix("berth-token-bench-")
        .tempdir_in(&cli.work_dir)
        .with_context(|| format!("creating a scratch directory in {}", cli.work_dir.display()))?;
    eprintln!("auth binary: {}", bin.display());
    eprintln!("scratch directory: {}", work.path().display());
    // On Ctrl-C, dropping the bench future kills berth-auth (kill_on_drop) and drops the
    // PostgreSQL database (its guard's Drop).
    tokio::select! {
        r = bench(&cli, &bin, work.path()) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            Ok(())
        }
    }
}

/// Micro-benchmarks, then the server and its variants, then the report.
async fn bench(cli: &Cli, bin: &Path, scratch: &Path) -> anyhow::Result<()> {
    // In-process costs first, while nothing else runs.
    let micro = micro_benchmarks()?;

    let (database_url, pg) = if cli.postgres {
        let db = PgDatabase::create(&cli.postgres_url)?;
        (db.url.clone(), Some(db))
    } else {
        (
            format!("sqlite://{}/berth.db?mode=rwc", scratch.display()),
            None,
        )
    };
    eprintln!("database: {database_url}");
    let mut auth = Auth::start(bin, &database_url, scratch).await?;
    let setup = match setup(&auth, bin, &database_url).await {
        Ok(s) => s,
        Err(e) => {
            anyhow::bail!("setting up data: {e:#}\nauth log:\n{}", auth.log_tail(30));
        }
    };

    let url = |scope: Option<&str>| {
        let mut u = format!("{}/jwt/auth?service={SERVICE}", auth.base);
        if let Some(s) = scope {
            u.push_str("&scope=");
            u.push_str(s);
        }
        u
    };
    let app_scope = "repository:bench/app:pull,push";
    let pat = basic_header("dev", &setup.pat)?;
    let password = basic_header("dev", DEV_PASSWORD)?;
    let mut variants = vec![
        Variant {
            name: "login",
            what: "Basic PAT, no scope (docker login)",
            url: url(None),
            auth: Some(pat.clone()),
            clients: cli.clients,
            warmup: Duration::from_secs(cli.warmup),
            seconds: Duration::from_secs(cli.seconds),
            probe_requests: 1000,
        },
        Variant {
            name: "pat+scope",
            what: "Basic PAT, bench/app pull,push",
            url: url(Some(app_scope)),
            auth: Some(pat),
            clients: cli.clients,
            warmup: Duration::from_secs(cli.warmup),
            seconds: Duration::from_secs(cli.seconds),
            probe_requests: 1000,
        },
        Variant {
            name: "anonymous",
            what: "no credentials, bench/pub pull",
            url: url(Some("repository:bench/pub:pull")),
            auth: None,
            clients: cli.clients,
            warmup: Duration::from_secs(cli.warmup),
            seconds: Duration::from_secs(cli.seconds),
            probe_requests: 1000,
        },
    ];
    if cli.password_seconds > 0 {
        variants.push(Variant {
            name: "password",
            what: "Basic password, bench/app pull,push",
            url: url(Some(app_scope)),
            auth: Some(password),
            clients: cli.password_clients,
            warmup: Duration::from_secs(1),
            seconds: Duration::from_secs(cli.password_seconds),
            probe_requests: 100,
        });
    }

    // Each variant's round with the least competing load on the machine. The token
    // variants take turns round by round; the password rounds come last, because argon2id
    // raises the peak RSS for good.
    let mut results: Vec<Option<Outcome>> = variants.iter().map(|_| None).collect();
    let pg_name = pg.as_ref().map(|d| d.name.as_str());
    let mut schedule: Vec<(u32, usize)> = Vec::new();
    for password in [false, true] {
        for round in 1..=cli.rounds {
            for (i, v) in variants.iter().enumerate() {
                if (v.name == "password") == password {
                    schedule.push((round, i));
                }
            }
        }
    }
    for (round, i) in schedule {
        let v = &variants[i];
        eprintln!(
            "round {round}/{}: {} ({} clients, {} s + {} s warm-up)...",
            cli.rounds,
            v.name,
            v.clients,
            v.seconds.as_secs(),
            v.warmup.as_secs()
        );
        let mut r = match run_variant(v, auth.pid()?, pg_name).await {
            Ok(r) => r,
            Err(e) => {
                anyhow::bail!("{}: {e:#}\nauth log:\n{}", v.name, auth.log_tail(30));
            }
        };
        r.peak_rss_mib = auth.peak_rss_mib().ok();
        eprintln!(
            "   {:.0} req/s, {:.0} µs CPU/req, other load {:.2} cores",
            r.rps, r.server_cpu_us, r.other_cores
        );
        let best = &mut results[i];
        if best.as_ref().is_none_or(|b| r.other_cores < b.other_cores) {
            *best = Some(r);
        }
    }
    // PostgreSQL: how many transactions (one per autocommit statement) each kind of
    // request runs, counted on a sequential probe after the measured runs.
    let txs: Vec<Option<f64>> = match &pg {
        Some(db) => {
            eprintln!("counting PostgreSQL transactions per request (about a minute)...");
            pg_transactions_per_request(&variants, db)
                .await
                .context("counting transactions")?
                .into_iter()
                .map(Some)
                .collect()
        }
        None => variants.iter().map(|_| None).collect(),
    };

    let results: Vec<Outcome> = results
        .into_iter()
        .zip(txs)
        .filter_map(|(r, tx)| r.map(|r| Outcome { pg_tx: tx, ..r }))
        .collect();
    if let Some(status) = auth.child.try_wait()? {
        anyhow::bail!("berth-auth exited ({status}); log:\n{}", auth.log_tail(30));
    }
    auth.child.kill().await?;

    print_report(cli, &database_url, &micro, &variants, &results);
    Ok(())
}

/// Resolves the berth-auth binary like `berth-bench` resolves berth-registry.
fn resolve_bin(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match flag {
        Some(p) => p,
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => PathBuf::from(dir).join("release").join("berth-auth"),
            None => std::env::current_exe()?
                .parent()
                .context("this executable has no directory")?
                .join("berth-auth"),
        },
    };
    anyhow::ensure!(
        bin.is_file(),
        "berth-auth not found at {} (build it with `cargo build --release -p berth-auth`, or \
         pass --auth-bin)",
        bin.display()
    );
    Ok(bin)
}

// ---------------------------------------------------------------------------------------
// In-process costs
// ---------------------------------------------------------------------------------------

/// Microseconds per operation of the two cryptographic steps of a token request.
struct Micro {
    sign_us: f64,
    sha_us: f64,
}

/// One ES256 token (claims built, serialised and signed) and one SHA-256 of a PAT, each in
/// a loop for about a second.
fn micro_benchmarks() -> anyhow::Result<Micro> {
    let issuer = berth_token::Issuer::new(
        berth_token::SigningKey::generate(),
        "berth",
        SERVICE,
        Duration::from_secs(300),
    );
    let sign = || {
        issuer
            .issue(
                Some("dev".into()),
                Some("personal_access_token".into()),
                vec![berth_token::Access::repository(
                    "bench/app",
                    &["pull", "push"],
                )],
            )
            .map(|t| std::hint::black_box(t.0).len())
            .context("signing")
    };
    sign()?; // warm-up
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        sign()?;
        n += 1;
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    // The same shape as a PAT: prefix + 32 URL-safe characters; stored as lowercase hex.
    let token = "bpat-AbCdEfGhIjKlMnOpQrStUvWxYz012345";
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..1024 {
            let digest = hex::encode(Sha256::digest(std::hint::black_box(token).as_bytes()));
            std::hint::black_box(digest);
        }
        n += 1024;
    }
    let sha_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    Ok(Micro { sign_us, sha_us })
}

// ---------------------------------------------------------------------------------------
// The auth process
// ---------------------------------------------------------------------------------------

/// A running `berth-auth serve`.
struct Auth {
    /// `http://127.0.0.1:<port>`.
    base: String,
    child: Child,
    log: PathBuf,
}

impl Auth {
    /// Starts `berth-auth serve` on `database_url` and waits for `/-/ready`.
    async fn start(bin: &Path, database_url: &str, dir: &Path) -> anyhow::Result<Self> {
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

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("berth-auth has exited")
    }

    /// Peak resident set size (VmHWM) so far, in MiB.
    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
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

    /// The last `n` lines of the log, for error reports.
    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// `berth-auth` with the caller's `BERTH_*` variables removed (they would change what is
/// measured), the database set and quiet logs.
fn auth_command(bin: &Path, database_url: &str) -> Command {
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

/// A scratch PostgreSQL database, dropped when this is.
struct PgDatabase {
    server: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(server: &str) -> anyhow::Result<Self> {
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
async fn pg_transactions_per_request(
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

// ---------------------------------------------------------------------------------------
// Data set-up through the CLI and the API
// ---------------------------------------------------------------------------------------

/// What the variants need.
struct Setup {
    /// The developer's personal access token.
    pat: String,
}

/// root's token from the CLI; then, through the API: group `bench`, private project
/// `bench/app`, public project `bench/pub`, user `dev` (developer of `bench/app`) and dev's
/// PAT.
async fn setup(auth: &Auth, bin: &Path, database_url: &str) -> anyhow::Result<Setup> {
    let out = auth_command(bin, database_url)
        .args([
            "--no-migrate",
            "token",
            "create",
            "--user",
            "root",
            "--scopes",
            "api,read_registry,write_registry",
            "--name",
            "bench",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running berth-auth token create")?;
    anyhow::ensure!(
        out.status.success(),
        "berth-auth token create failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let root = String::from_utf8(out.stdout)?.trim().to_owned();
    anyhow::ensure!(!root.is_empty(), "berth-auth token create printed nothing");

    let api = Api {
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: format!("{}/api/v4", auth.base),
        token: root,
    };
    let group = api
        .post(
            "/groups",
            json!({"name": "bench", "path": "bench", "visibility": "private"}),
        )
        .await?;
    let gid = id_of(&group)?;
    let project = api
        .post(
            "/projects",
            json!({"name": "app", "path": "app", "namespace_id": gid, "visibility": "private"}),
        )
        .await?;
    let pid = id_of(&project)?;
    let public = json!({"name": "pub", "path": "pub", "namespace_id": gid, "visibility": "public"});
    if let Err(e) = api.post("/projects", public.clone()).await {
        // GitLab refuses a project more visible than its group; then open the group.
        eprintln!("note: {e:#}; making group bench public");
        api.put(&format!("/groups/{gid}"), json!({"visibility": "public"}))
            .await?;
        api.post("/projects", public).await?;
    }
    let user = api
        .post(
            "/users",
            json!({"username": "dev", "email": "dev@example.com", "name": "dev",
                   "password": DEV_PASSWORD}),
        )
        .await?;
    let uid = id_of(&user)?;
    api.post(
        &format!("/projects/{pid}/members"),
        json!({"user_id": uid, "access_level": 30}),
    )
    .await?;
    let pat = api
        .post(
            &format!("/users/{uid}/personal_access_tokens"),
            json!({"name": "bench", "scopes": ["read_registry", "write_registry"]}),
        )
        .await?;
    let pat = pat
        .get("token")
        .and_then(Value::as_str)
        .with_context(|| format!("no token in {pat}"))?
        .to_owned();
    Ok(Setup { pat })
}

/// The management API as root.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.client.post(format!("{}{path}", self.base)), path, body)
            .await
    }

    async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.client.put(format!("{}{path}", self.base)), path, body)
            .await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let resp = req
            .header("PRIVATE-TOKEN", &self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| path.to_owned())?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "{path} {body} answered {status}: {text}"
        );
        serde_json::from_str(&text).with_context(|| format!("{path} answered {text}"))
    }
}

fn id_of(v: &Value) -> anyhow::Result<i64> {
    v.get("id")
        .and_then(Value::as_i64)
        .with_context(|| format!("no id in {v}"))
}

/// `Basic base64(user:password)`, built by reqwest so the bench needs no base64 crate.
fn basic_header(user: &str, password: &str) -> anyhow::Result<HeaderValue> {
    let req = reqwest::Client::new()
        .get("http://127.0.0.1/")
        .basic_auth(user, Some(password))
        .build()?;
    req.headers()
        .get(AUTHORIZATION)
        .cloned()
        .context("reqwest set no Authorization header")
}

// ---------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------

/// One load variant.
struct Variant {
    name: &'static str,
    what: &'static str,
    url: String,
    auth: Option<HeaderValue>,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
    /// Requests of the PostgreSQL transaction-count probe.
    probe_requests: u32,
}

/// What a variant measured.
struct Outcome {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    /// Auth process CPU per request, µs.
    server_cpu_us: f64,
    /// Auth process CPU over the window, in cores.
    server_cores: f64,
    /// This process's CPU per request, µs.
    client_cpu_us: f64,
    /// CPU per request of the PostgreSQL backends serving the bench database, µs.
    db_cpu_us: Option<f64>,
    /// PostgreSQL transactions per request (from a sequential probe).
    pg_tx: Option<f64>,
    /// CPU used by everything else on the machine over the window, in cores.
    other_cores: f64,
    /// VmHWM after the variant, MiB.
    peak_rss_mib: Option<f64>,
}

/// Runs `clients` workers, each looping on `v.url` over its own keep-alive connection,
/// through the warm-up and the measured window; counts only requests started and finished
/// inside the window and reads both processes' CPU time at its edges.
async fn run_variant(
    v: &Variant,
    auth_pid: u32,
    pg_database: Option<&str>,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let from = start + v.warmup;
    let until = from + v.seconds;
    let url: Arc<str> = Arc::from(v.url.as_str());
    let mut headers = HeaderMap::new();
    if let Some(h) = &v.auth {
        headers.insert(AUTHORIZATION, h.clone());
    }
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..v.clients {
        let url = Arc::clone(&url);
        let headers = headers.clone();
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()?;
        workers.spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(16 * 1024);
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let resp = client
                    .get(&*url)
                    .headers(headers.clone())
                    .send()
                    .await
                    .context("sending")?;
                let status = resp.status();
                let body = resp.bytes().await.context("reading the body")?;
                anyhow::ensure!(
                    status == StatusCode::OK,
                    "{url} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                let t1 = Instant::now();
                if t0 >= from && t1 <= until {
                    let us = (t1 - t0).as_micros();
                    latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok(latencies)
        });
    }

    // The CPU meter: read both processes at the window's edges.
    let meter = async {
        tokio::time::sleep_until(from.into()).await;
        let s0 = cpu_ticks(auth_pid)?;
        let c0 = cpu_ticks_self()?;
        let d0 = pg_database.map(pg_backend_ticks);
        let m0 = machine_busy_ticks()?;
        let t0 = Instant::now();
        tokio::time::sleep_until(until.into()).await;
        let s1 = cpu_ticks(auth_pid)?;
        let c1 = cpu_ticks_self()?;
        let d1 = pg_database.map(pg_backend_ticks);
        let m1 = machine_busy_ticks()?;
        let db = d0.zip(d1).map(|(a, b)| b.saturating_sub(a));
        anyhow::Ok((s1 - s0, c1 - c0, db, m1.saturating_sub(m0), t0.elapsed()))
    };
    let collect = async {
        let mut all = Vec::new();
        while let Some(r) = workers.join_next().await {
            // The first failure aborts the variant; dropping the set aborts the rest.
            all.extend(r.context("a worker panicked")??);
        }
        anyhow::Ok(all)
    };
    let (cpu, latencies) = tokio::join!(meter, collect);
    let (server_ticks, client_ticks, db_ticks, machine_ticks, window) = cpu?;
    let mut latencies = latencies?;
    anyhow::ensure!(!latencies.is_empty(), "no request completed in the window");
    latencies.sort_unstable();
    let pct = |p: f64| {
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    let requests = latencies.len() as u64;
    let tick_us = 1e6 / clock_ticks_per_second() as f64;
    let window = window.as_secs_f64();
    Ok(Outcome {
        requests,
        rps: requests as f64 / window,
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        server_cpu_us: server_ticks as f64 * tick_us / requests as f64,
        server_cores: server_ticks as f64 * tick_us / 1e6 / window,
        client_cpu_us: client_ticks as f64 * tick_us / requests as f64,
        db_cpu_us: db_ticks.map(|t| t as f64 * tick_us / requests as f64),
        pg_tx: None,
        other_cores: machine_ticks
            .saturating_sub(server_ticks + client_ticks + db_ticks.unwrap_or(0))
            as f64
            * tick_us
            / 1e6
            / window,
        peak_rss_mib: None,
    })
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

fn cpu_ticks_self() -> anyhow::Result<u64> {
    parse_stat_ticks(&std::fs::read_to_string("/proc/self/stat")?)
}

/// Fields 14 and 15 of `/proc/<pid>/stat`; counted after the `)` that ends the command
/// name, which may itself contain spaces.
fn parse_stat_ticks(stat: &str) -> anyhow::Result<u64> {
    let rest = &stat[stat.rfind(')').context("malformed /proc stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so field 14 is index 11.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Busy time of all CPUs (the `cpu` line of `/proc/stat` minus idle and iowait), in
/// clock ticks.
fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok(total - idle)
}

/// utime + stime of every local PostgreSQL backend connected to `database` (its process
/// title, in `/proc/<pid>/cmdline`, is `postgres: [<cluster>:] <user> <database> <client>
/// <state>`).
/// Backends that exit inside the window are missed; berth-auth's pool keeps its open.
fn pg_backend_ticks(database: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in dir.flatten() {
        let path = entry.path();
        let is_pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let ours =
            cmdline.starts_with("postgres:") && cmdline.split_whitespace().any(|w| w == database);
        if ours
            && let Ok(stat) = std::fs::read_to_string(path.join("stat"))
            && let Ok(ticks) = parse_stat_ticks(&stat)
        {
            total += ticks;
        }
    }
    total
}

/// `getconf CLK_TCK`, else Linux's usual 100.
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

fn print_report(
    cli: &Cli,
    database_url: &str,
    micro: &Micro,
    variants: &[Variant],
    results: &[Outcome],
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let db = if cli.postgres { "PostgreSQL" } else { "SQLite" };
    println!();
    println!("berth-auth token issuance, {db} ({database_url})");
    println!(
        "{cores} cores shared by berth-auth, this client{}; CPU from /proc/<pid>/stat ({} \
         ticks/s) over each measured window of {} s (password: {} s)",
        if cli.postgres { " and PostgreSQL" } else { "" },
        clock_ticks_per_second(),
        cli.seconds,
        cli.password_seconds
    );
    if cli.rounds > 1 {
        println!(
            "{} rounds: per variant, the round with the least CPU used by other processes",
            cli.rounds
        );
    }
    println!();
    let db_col = |r: &Outcome| r.db_cpu_us.map_or("-".into(), |d| format!("{d:.0}"));
    println!(
        "{:<10} {:<36} {:>3} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>5} {:>8} {:>7} {:>9} {:>5} {:>7}",
        "variant",
        "request",
        "c",
        "reqs",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "auth µs/r",
        "cores",
        "pg µs/r",
        "pg tx/r",
        "clnt µs/r",
        "other",
        "HWM MiB"
    );
    for (v, r) in variants.iter().zip(results) {
        println!(
            "{:<10} {:<36} {:>3} {:>7} {:>7.0} {:>7.2} {:>7.2} {:>7.2} {:>9.0} {:>5.2} {:>8} {:>7} {:>9.0} {:>5.2} {:>7}",
            v.name,
            v.what,
            v.clients,
            r.requests,
            r.rps,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.server_cpu_us,
            r.server_cores,
            db_col(r),
            r.pg_tx.map_or("-".into(), |t| format!("{t:.1}")),
            r.client_cpu_us,
            r.other_cores,
            r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.1}")),
        );
    }
    println!(
        "(c = concurrent clients; auth/pg/clnt µs/r = CPU µs per request of berth-auth, of \
         the PostgreSQL backends serving it, of this client; cores = berth-auth CPU seconds \
         per second; pg tx/r = PostgreSQL transactions per request, from a sequential probe; \
         other = cores busy with anything else on the machine, which competed with \
         the bench; HWM = berth-auth VmHWM after the variant, cumulative)"
    );
    println!();
    println!("in-process (one core, berth-token and sha2 as built into this binary):");
    println!(
        "  ES256 token (claims + JSON + sign), one repository access: {:>8.1} µs/op",
        micro.sign_us
    );
    println!(
        "  SHA-256 of a PAT, hex-encoded:                             {:>8.3} µs/op",
        micro.sha_us
    );
    println!();
    println!("where the time goes:");
    for line in wrap(&where_time_goes(micro, variants, results, cli.rounds), 94) {
        println!("  {line}");
    }
}

/// The paragraph: each variant's CPU per request taken apart with the in-process costs
/// and the differences between variants.
fn where_time_goes(
    micro: &Micro,
    variants: &[Variant],
    results: &[Outcome],
    rounds: u32,
) -> String {
    let get = |name: &str| {
        variants
            .iter()
            .zip(results)
            .find(|(v, _)| v.name == name)
            .map(|(_, r)| r)
    };
    let (Some(login), Some(full), Some(anon)) = (get("login"), get("pat+scope"), get("anonymous"))
    else {
        return "(a variant is missing)".into();
    };
    let sign = micro.sign_us;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = format!(
        "A PAT token with one repository scope costs berth-auth {:.0} µs of CPU ({:.0} \
         tokens/s using {:.2} cores); signing it (ES256, in-process {sign:.0} µs) is {:.0}% \
         of that, SHA-256 of the PAT {:.1} µs is noise. The docker-login form (PAT, no \
         scope; still signed) costs {:.0} µs, so HTTP + credential check (PAT digest lookup \
         + user) is about {:.0} µs besides the signature, and the repository scope adds {:.0} \
         µs (project by path, namespace chain, membership, access claim). An anonymous pull \
         of a public project (grant + sign, no credential) costs {:.0} µs, {:.0} µs besides \
         the signature.",
        full.server_cpu_us,
        full.rps,
        full.server_cores,
        100.0 * sign / full.server_cpu_us,
        micro.sha_us,
        login.server_cpu_us,
        login.server_cpu_us - sign,
        full.server_cpu_us - login.server_cpu_us,
        anon.server_cpu_us,
        anon.server_cpu_us - sign,
    );
    if let Some(db) = full.db_cpu_us {
        let tx = full.pg_tx.unwrap_or(0.0);
        s.push_str(&format!(
            " PostgreSQL's backends spend another {db:.0} µs per full token (login {:.0}, \
             anonymous {:.0}) on {tx:.1} transactions (login {:.1}, anonymous {:.1}), about \
             {:.0} µs each, so a full token costs {:.0} µs of server CPU in all; each \
             transaction is also a loopback round trip inside berth-auth's figure.",
            login.db_cpu_us.unwrap_or(0.0),
            anon.db_cpu_us.unwrap_or(0.0),
            login.pg_tx.unwrap_or(0.0),
            anon.pg_tx.unwrap_or(0.0),
            if tx > 0.0 { db / tx } else { 0.0 },
            full.server_cpu_us + db,
        ));
    }
    s.push_str(&format!(
        " This client spends {:.0} µs per full token on the same {cores} cores, so the rate \
         is bounded by the processes sharing the machine as much as by berth-auth.",
        full.client_cpu_us,
    ));
    if let Some(pw) = get("password") {
        s.push_str(&format!(
            " A password login with the same scope costs {:.1} ms of CPU, {:.0}x the PAT \
             (argon2id is ~{:.0}% of it): {:.0} tokens/s, p50 {:.0} ms at {} clients.",
            pw.server_cpu_us / 1000.0,
            pw.server_cpu_us / full.server_cpu_us,
            100.0 * (pw.server_cpu_us - full.server_cpu_us) / pw.server_cpu_us,
            pw.rps,
            pw.p50_ms,
            variants
                .iter()
                .find(|v| v.name == "password")
                .map_or(0, |v| v.clients),
        ));
    }
    let busiest = results.iter().map(|r| r.other_cores).fold(0.0, f64::max);
    if busiest > 0.2 {
        s.push_str(&format!(
            " Other processes kept up to {busiest:.2} cores busy during the runs (see \
             \"other\"): rates are lower and CPU per request is higher than on a quiet \
             machine{}.",
            if rounds > 1 { "" } else { " (try --rounds 3)" }
        ));
    }
    s
}

/// Greedy word wrap at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
