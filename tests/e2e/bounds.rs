//! Every binary bounds its connections: slow, idle and half-sent requests are closed within
//! the configured timeouts while normal requests keep answering and memory stays flat; a
//! connection beyond the limit is refused with a clear 503; berth-auth's endpoints read no
//! more body than they need.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stack::{Options, Stack};

/// Timeouts the slow-client test configures (seconds), short so it runs quickly.
const HEADER_S: u64 = 2;
const BODY_S: u64 = 2;
const IDLE_S: u64 = 3;
/// Slack on top of a timeout before a connection counts as held too long: accept queues,
/// two busy cores and debug builds.
const MARGIN: Duration = Duration::from_secs(2);
/// Memory ceiling per process under the load.
const RSS_LIMIT_KB: u64 = 150 * 1024;

fn timeouts() -> Vec<(String, String)> {
    [
        ("BERTH_HTTP_HEADER_TIMEOUT", format!("{HEADER_S}s")),
        ("BERTH_HTTP_BODY_TIMEOUT", format!("{BODY_S}s")),
        ("BERTH_HTTP_IDLE_TIMEOUT", format!("{IDLE_S}s")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Read until the server closes; with `trickle`, send the next byte of `trickle` every
/// second meanwhile. Returns how long after `since` the close came, or `None` if the
/// connection was still open after 20 s.
async fn closed_after(
    mut s: TcpStream,
    trickle: Option<&'static [u8]>,
    since: Instant,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut next = 0usize;
    let watch = async {
        loop {
            tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return since.elapsed(),
                    Ok(_) => {}
                },
                _ = tick.tick(), if trickle.is_some() => {
                    let bytes = trickle.unwrap_or_default();
                    let byte = bytes[next % bytes.len()];
                    next += 1;
                    if s.write_all(&[byte]).await.is_err() {
                        return since.elapsed();
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .ok()
}

/// The head of a request trickled one byte a second; it never ends.
const SLOW_HEAD: &[u8] =
    b"GET /-/health HTTP/1.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Open `n` connections of one kind to `target`, each watched by a task that yields its
/// close time. They are opened in small waves: a burst of hundreds of connects overflows
/// the kernel's accept queue, and a connection dropped there was never the server's to
/// close (the client just sees silence).
async fn open_many(
    n: usize,
    target: &str,
    kind: Load,
) -> Vec<tokio::task::JoinHandle<(Load, Option<Duration>)>> {
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (target, kind) = (target.to_owned(), kind.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&target).await else {
                return (kind, None);
            };
            let closed = match &kind {
                Load::Idle => closed_after(s, None, Instant::now()).await,
                Load::SlowHead => closed_after(s, Some(SLOW_HEAD), Instant::now()).await,
                Load::HalfBody { head, sent } => {
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&vec![b'{'; *sent]).await.is_err()
                    {
                        return (kind, None);
                    }
                    closed_after(s, None, Instant::now()).await
                }
            };
            (kind, closed)
        }));
    }
    tasks
}

#[derive(Clone, Debug)]
enum Load {
    Idle,
    SlowHead,
    HalfBody { head: String, sent: usize },
}

impl Load {
    fn allowed(&self) -> Duration {
        MARGIN
            + Duration::from_secs(match self {
                Load::Idle => IDLE_S,
                Load::SlowHead => HEADER_S,
                Load::HalfBody { .. } => BODY_S,
            })
    }

    fn name(&self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::SlowHead => "slow head",
            Load::HalfBody { .. } => "half-sent body",
        }
    }
}

async fn slow_clients(backend: berth_test_support::Backend) {
    let opts = Options {
        auth_env: timeouts(),
        registry_env: timeouts(),
        ..Options::default()
    };
    let Some(stack) = Stack::start_with(backend, opts).await else {
        return;
    };
    let gc_env: Vec<(String, String)> = timeouts();
    let gc_env: Vec<(&str, &str)> = gc_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let gc = stack.start_gc(&gc_env).await;
    // A project to push to, and a token for it.
    let group = stack.create_group("slow", None).await;
    stack
        .create_project(
            group["id"].as_i64().expect("group id"),
            "app",
            "private",
            "enabled",
        )
        .await;
    let jwt = stack
        .registry_token(
            Some(("root", stack.root_token.as_str())),
            &["repository:slow/app:push,pull"],
        )
        .await;
    let procs = [
        ("berth-auth", addr(&stack.auth.url), stack.auth.pid()),
        (
            "berth-registry",
            addr(&stack.registry.url),
            stack.registry.pid(),
        ),
        ("berth-gc", addr(&gc.url), gc.pid()),
    ];
    let before: Vec<(u64, u64)> = procs.iter().map(|p| memory_kb(p.2)).collect();

    // The load: on every binary 100 slow heads and 500 idle connections; 200 half-sent
    // API bodies on berth-auth and 200 half-sent manifests on the registry.
    let api_head = format!(
        "POST /api/v4/groups HTTP/1.1\r\nhost: auth\r\nprivate-token: {}\r\n\
         content-type: application/json\r\ncontent-length: 60000\r\n\r\n",
        stack.root_token
    );
    let manifest_head = format!(
        "PUT /v2/slow/app/manifests/latest HTTP/1.1\r\nhost: registry\r\nauthorization: Bearer {jwt}\r\n\
         content-type: application/vnd.oci.image.manifest.v1+json\r\ncontent-length: 100000\r\n\r\n"
    );
    let mut tasks = Vec::new();
    for (name, target, _) in &procs {
        tasks.extend(open_many(100, target, Load::SlowHead).await);
        tasks.extend(open_many(500, target, Load::Idle).await);
        match *name {
            "berth-auth" => tasks.extend(
                open_many(
                    200,
                    target,
                    Load::HalfBody {
                        head: api_head.clone(),
                        sent: 1000,
                    },
                )
                .await,
            ),
            "berth-registry" => tasks.extend(
                open_many(
                    200,
                    target,
                    Load::HalfBody {
                        head: manifest_head.clone(),
                        sent: 1000,
                    },
                )
                .await,
            ),
            _ => {}
        }
    }

    // Meanwhile normal requests answer within a second, and memory is sampled.
    let mut peak = vec![0u64; procs.len()];
    let mut slowest = Duration::ZERO;
    let probe_until = Instant::now() + Duration::from_secs(IDLE_S + 3);
    while Instant::now() < probe_until {
        for (i, (_, _, pid)) in procs.iter().enumerate() {
            peak[i] = peak[i].max(memory_kb(*pid).0);
        }
        let started = Instant::now();
        let probes = async {
            let api = stack
                .api(Method::GET, "/projects", &stack.root_token)
                .send();
            let v2 = stack
                .http
                .get(format!("{}/v2/", stack.registry.url))
                .bearer_auth(&jwt)
                .send();
            let gc_health = stack.http.get(format!("{}/-/health", gc.url)).send();
            let (api, v2, gc_health) = tokio::join!(api, v2, gc_health);
            (
                api.map(|r| r.status()),
                v2.map(|r| r.status()),
                gc_health.map(|r| r.status()),
            )
        };
        let (api, v2, gc_health) = tokio::time::timeout(Duration::from_secs(5), probes)
            .await
            .expect("normal requests hung under the load");
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert_eq!(api.expect("api probe"), StatusCode::OK);
        assert_eq!(v2.expect("registry probe"), StatusCode::OK);
        assert_eq!(gc_health.expect("gc probe"), StatusCode::OK);
        assert!(
            took < Duration::from_secs(1),
            "normal requests took {took:?} under the load"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every slow or idle connection was closed, each within its timeout and the margin.
    let mut worst: std::collections::BTreeMap<&'static str, Duration> = Default::default();
    for t in tasks {
        let (kind, closed) = t.await.expect("connection task");
        let Some(after) = closed else {
            panic!("a {} connection was still open after 20 s", kind.name());
        };
        assert!(
            after <= kind.allowed(),
            "a {} connection was closed only after {after:?} (allowed {:?})",
            kind.name(),
            kind.allowed()
        );
        let w = worst.entry(kind.name()).or_default();
        *w = (*w).max(after);
    }
    for (i, (name, _, pid)) in procs.iter().enumerate() {
        let (rss, hwm) = memory_kb(*pid);
        eprintln!(
            "{name}: RSS before {} KiB, peak sampled {} KiB, after {rss} KiB, high-water mark {hwm} KiB",
            before[i].0, peak[i]
        );
        assert!(hwm < RSS_LIMIT_KB, "{name} reached {hwm} KiB");
    }
    eprintln!("slowest normal round of requests under load: {slowest:?}; latest closes: {worst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_closed_and_memory_stays_bounded_sqlite() {
    slow_clients(berth_test_support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_closed_and_memory_stays_bounded_postgres() {
    slow_clients(berth_test_support::Backend::Postgres).await;
}

/// Send a bare `GET /-/health` on a new connection; the raw answer.
async fn raw_health(target: &str) -> String {
    let mut s = TcpStream::connect(target).await.expect("connect");
    s.write_all(b"GET /-/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn connection_cap(backend: berth_test_support::Backend) {
    let cap = vec![("BERTH_HTTP_MAX_CONNECTIONS".to_owned(), "20".to_owned())];
    let opts = Options {
        auth_env: cap.clone(),
        registry_env: cap,
        ..Options::default()
    };
    let Some(stack) = Stack::start_with(backend, opts).await else {
        return;
    };
    let gc = stack
        .start_gc(&[("BERTH_HTTP_MAX_CONNECTIONS", "20")])
        .await;
    for target in [
        addr(&stack.auth.url),
        addr(&stack.registry.url),
        addr(&gc.url),
    ] {
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(TcpStream::connect(&target).await.expect("connect"));
        }
        // Let the server accept all twenty.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let refused = raw_health(&target).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{target}: {refused}");
        assert!(
            refused.to_ascii_lowercase().contains("retry-after: 1"),
            "{refused}"
        );
        // Freed connections make room again.
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let answer = raw_health(&target).await;
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{target} still refuses: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_with_503_sqlite() {
    connection_cap(berth_test_support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_with_503_postgres() {
    connection_cap(berth_test_support::Backend::Postgres).await;
}

crate::stack_test!(auth_endpoints_read_only_the_body_they_need, |stack| {
    // A GET takes no body.
    let r = stack
        .api(Method::GET, "/projects", &stack.root_token)
        .body("x".repeat(100))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // An API body over 64 KiB is refused before it is read.
    let big = json!({"name": "g", "path": "g", "description": "d".repeat(70 * 1024)});
    let (status, v) = stack
        .call(Method::POST, "/groups", &stack.root_token, Some(big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["message"].as_str().unwrap_or_default().starts_with("413"),
        "{v}"
    );
    // A token form over 8 KiB too.
    let r = stack
        .http
        .post(format!("{}/jwt/auth", stack.auth.url))
        .form(&[
            ("service", "container_registry"),
            ("scope", &"a".repeat(9000)),
        ])
        .send()
        .await
        .expect("post token");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Ordinary bodies still work.
    stack.create_group("fits", None).await;
});
