//! The load generator: a variant's concurrent keep-alive clients through a warm-up and a
//! measured window, with latency percentiles and the CPU the processes spent meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::proc_stats::{
    clock_ticks_per_second, cpu_ticks, cpu_ticks_self, machine_busy_ticks, pg_backend_ticks,
};

/// One load variant.
pub struct Variant {
    /// Short name, the report's first column.
    pub name: &'static str,
    /// What the request is, in a few words.
    pub what: &'static str,
    /// The `/jwt/auth` URL with its query.
    pub url: String,
    /// The `Authorization` header, if any.
    pub auth: Option<HeaderValue>,
    /// Concurrent clients.
    pub clients: usize,
    /// Warm-up before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub seconds: Duration,
    /// Requests of the PostgreSQL transaction-count probe.
    pub probe_requests: u32,
}

/// What a variant measured.
pub struct Outcome {
    /// Requests started and finished inside the window.
    pub requests: u64,
    /// Requests per second over the window.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile latency, ms.
    pub p90_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Auth process CPU per request, µs.
    pub server_cpu_us: f64,
    /// Auth process CPU over the window, in cores.
    pub server_cores: f64,
    /// This process's CPU per request, µs.
    pub client_cpu_us: f64,
    /// CPU per request of the PostgreSQL backends serving the bench database, µs.
    pub db_cpu_us: Option<f64>,
    /// PostgreSQL transactions per request (from a sequential probe).
    pub pg_tx: Option<f64>,
    /// CPU used by everything else on the machine over the window, in cores.
    pub other_cores: f64,
    /// VmHWM after the variant, MiB.
    pub peak_rss_mib: Option<f64>,
}

/// Runs `clients` workers, each looping on `v.url` over its own keep-alive connection,
/// through the warm-up and the measured window; counts only requests started and finished
/// inside the window and reads both processes' CPU time at its edges.
pub async fn run_variant(
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
