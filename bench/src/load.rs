//! HTTP load generation for the manifest workloads: `wrk` for GET when it is installed,
//! else (and always for HEAD) a built-in generator speaking HTTP/1.1 over tokio sockets.
//!
//! The client shares the machine's cores with the server, so the cheaper the client per
//! request, the more the figure says about the server: both generators build the request
//! once and do little more per request than one write and one read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which load generator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadGen {
    /// wrk for GET if it is on PATH, else the built-in one.
    Auto,
    /// wrk for GET (`apt-get install wrk`); HEAD still uses the built-in one.
    Wrk,
    /// HTTP/1.1 over tokio sockets, one task per connection.
    Builtin,
}

impl LoadGen {
    /// Settles `Auto` by looking for wrk on PATH, saying so when it is missing.
    pub fn resolve(self) -> anyhow::Result<LoadGen> {
        let found = find_on_path("wrk");
        match self {
            LoadGen::Auto if found.is_some() => Ok(LoadGen::Wrk),
            LoadGen::Auto => {
                eprintln!(
                    "note: wrk is not installed (apt-get install -y wrk); manifest GET uses \
                     the built-in load generator too (HEAD always does)"
                );
                Ok(LoadGen::Builtin)
            }
            LoadGen::Wrk => {
                anyhow::ensure!(found.is_some(), "--load-gen wrk, but wrk is not on PATH");
                Ok(LoadGen::Wrk)
            }
            LoadGen::Builtin => Ok(LoadGen::Builtin),
        }
    }
}

/// One load run: the same request over and over on `connections` connections.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Absolute URL.
    pub url: String,
    /// HEAD or GET.
    pub method: Method,
    /// Request headers (name, value).
    pub headers: Vec<(String, String)>,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to run.
    pub duration: Duration,
}

/// What a load run measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Completed requests per second, errors included.
    pub rps: f64,
    /// 99th-percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Completed requests.
    pub requests: u64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
}

/// Runs `spec` with `generator` (already resolved, never `Auto`). HEAD always uses the
/// built-in generator (see [`run_builtin`]). Fails when nothing completed or more than 1%
/// of requests failed, since the rate would then not describe successful requests.
pub async fn run(generator: LoadGen, spec: &Spec) -> anyhow::Result<Outcome> {
    let outcome = if generator == LoadGen::Wrk && spec.method == Method::GET {
        run_wrk(spec).await?
    } else {
        run_builtin(spec).await?
    };
    anyhow::ensure!(outcome.requests > 0, "no request completed");
    anyhow::ensure!(
        outcome.errors * 100 <= outcome.requests,
        "{} of {} requests failed",
        outcome.errors,
        outcome.requests
    );
    Ok(outcome)
}

/// Which generator [`run`] uses for `method`, for the report.
pub fn describe(generator: LoadGen, method: &Method, connections: usize) -> String {
    if generator == LoadGen::Wrk && method == Method::GET {
        format!("wrk -t{} -c{connections}", connections.min(2))
    } else {
        format!("built-in, {connections} connections")
    }
}

/// `wrk -t2 -c<n> -d<secs>s --latency` for a GET.
async fn run_wrk(spec: &Spec) -> anyhow::Result<Outcome> {
    // wrk needs at least one connection per thread.
    let threads = spec.connections.min(2);
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{}", spec.connections))
        .arg(format!("-d{}s", spec.duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency");
    for (name, value) in &spec.headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    cmd.arg(&spec.url);
    let out = cmd.output().await.context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&stdout).with_context(|| format!("parsing wrk output:\n{stdout}"))
}

/// Pulls requests/s, the 99% latency, the request count and the error counts out of wrk's
/// human-readable report (wrk has no machine-readable one without a Lua `done` hook).
fn parse_wrk(text: &str) -> anyhow::Result<Outcome> {
    let mut rps = None;
    let mut p99_ms = None;
    let mut requests = None;
    let mut errors = 0u64;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = Some(v.trim().parse::<f64>()?);
        } else if let Some(v) = line.strip_prefix("99%") {
            p99_ms = Some(parse_wrk_duration_ms(v.trim())?);
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            requests = Some(n.trim().parse::<u64>()?);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    errors += n.parse::<u64>()?;
                }
            }
        }
    }
    Ok(Outcome {
        rps: rps.context("no Requests/sec line")?,
        p99_ms: p99_ms.context("no 99% latency line")?,
        requests: requests.context("no request count line")?,
        errors,
    })
}

/// wrk's durations: a number with `us`, `ms`, `s`, `m` or `h`.
fn parse_wrk_duration_ms(v: &str) -> anyhow::Result<f64> {
    let split = v
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {v:?}"))?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse()?;
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        other => anyhow::bail!("unknown wrk unit {other:?}"),
    };
    Ok(n * scale)
}

/// One task per connection, each sending the request back to back on its own keep-alive
/// connection until the deadline.
///
/// It speaks HTTP/1.1 directly over a `TcpStream` with the request bytes built once: per
/// request it costs one write and a scan for the end of the headers, about as little as
/// wrk, where reqwest would build and parse headers into maps every time. It also handles
/// HEAD, which wrk 4.1 cannot: wrk waits for a body of the announced Content-Length.
async fn run_builtin(spec: &Spec) -> anyhow::Result<Outcome> {
    let target = Target::parse(&spec.url)?;
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        spec.method, target.path, target.authority
    );
    for (name, value) in &spec.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let shared = Arc::new((
        request.into_bytes(),
        target.authority,
        spec.method == Method::HEAD,
    ));

    let started = Instant::now();
    let deadline = started + spec.duration;
    let mut tasks = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            let (request, authority, head) = &*shared;
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 14);
            let mut errors = 0u64;
            let mut conn: Option<Conn> = None;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let result = async {
                    if conn.is_none() {
                        conn = Some(Conn::open(authority).await?);
                    }
                    let c = conn.as_mut().context("no connection")?;
                    c.round_trip(request, *head).await
                }
                .await;
                match result {
                    Ok(status) if (200..400).contains(&status) => {}
                    Ok(_) => errors += 1,
                    Err(_) => {
                        // Start over on a fresh connection, as wrk does.
                        errors += 1;
                        conn = None;
                    }
                }
                latencies_us.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            (latencies_us, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (lat, err) = task.await?;
        all.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(!all.is_empty(), "no request completed");
    all.sort_unstable();
    let idx = ((all.len() as f64) * 0.99).ceil() as usize;
    let p99 = all[idx.clamp(1, all.len()) - 1];
    Ok(Outcome {
        rps: all.len() as f64 / elapsed,
        p99_ms: f64::from(p99) / 1e3,
        requests: all.len() as u64,
        errors,
    })
}

/// Host and path of an `http://` URL.
struct Target {
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("the built-in load generator needs an http:// URL: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        Ok(Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// One keep-alive connection plus bytes read past the previous response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(authority: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(authority).await?;
        // Requests are one small write each; Nagle would only delay them.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    /// Sends `request` and reads one whole response; returns its status code.
    async fn round_trip(&mut self, request: &[u8], head: bool) -> anyhow::Result<u16> {
        self.stream.write_all(request).await?;
        let header_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let headers = std::str::from_utf8(&self.buf[..header_end])?;
        let status: u16 = headers
            .split(' ')
            .nth(1)
            .context("no status code")?
            .parse()?;
        let mut body = 0usize;
        let mut keep_alive = true;
        for line in headers.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                body = value.parse()?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                anyhow::bail!("chunked responses are not supported");
            } else if name.eq_ignore_ascii_case("connection") {
                keep_alive = !value.eq_ignore_ascii_case("close");
            }
        }
        // A HEAD response announces the GET's length but carries no body; so do 204/304.
        if head || status == 204 || status == 304 {
            body = 0;
        }
        while self.buf.len() < header_end + body {
            self.fill().await?;
        }
        self.buf.drain(..header_end + body);
        anyhow::ensure!(keep_alive, "server closed the connection");
        Ok(status)
    }

    /// Appends whatever the socket has; EOF is an error since a response is pending.
    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed mid-response");
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first executable called `name` in a PATH directory.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_report() {
        let text = "Running 2s test @ http://127.0.0.1:5000/v2/x/manifests/latest
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  12.34ms   80.00%
    Req/Sec    10.00k     1.00k   12.00k    70.00%
  Latency Distribution
     50%    1.10ms
     75%    1.40ms
     90%    1.90ms
     99%  850.00us
  40000 requests in 2.00s, 10.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  19999.50
Transfer/sec:      5.00MB
";
        let o = parse_wrk(text).unwrap();
        assert_eq!(o.requests, 40000);
        assert_eq!(o.errors, 8);
        assert!((o.rps - 19999.5).abs() < 1e-9);
        assert!((o.p99_ms - 0.85).abs() < 1e-9);
    }

    #[test]
    fn parses_wrk_units() {
        assert!((parse_wrk_duration_ms("1.50s").unwrap() - 1500.0).abs() < 1e-9);
        assert!((parse_wrk_duration_ms("2.00m").unwrap() - 120_000.0).abs() < 1e-9);
    }
}
