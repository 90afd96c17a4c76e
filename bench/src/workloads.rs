//! The workloads, and one registry's round through all of them.
//!
//! Every request goes through the same `reqwest` client code for both registries; the only
//! per-registry difference the client tolerates is the form of `Location` (relative for
//! Berth, absolute with a `_state` query for Distribution).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Client, Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::auth::Keys;
use crate::data::{BlobFile, Blobs, XorShift, digest, mbps};
use crate::load::{self, LoadGen};
use crate::procs::{Kind, Launch, Registry};
use crate::report::{Metric, Results};

/// OCI image manifest media type.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// What `docker`/`containerd` send as `Accept` when resolving a tag; Distribution refuses
/// an OCI manifest to a client that does not list the OCI type.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";
/// Read size when streaming blob files into request bodies.
const STREAM_BUF: usize = 1 << 20;

/// Repository of the big-blob workloads.
const BIG_REPO: &str = "bench/big/blob";
/// Repository the manifest load reads.
const MANIFEST_REPO: &str = "bench/small/manifest";

/// Sizes and counts of one bench run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Size of each big blob.
    pub blob_bytes: u64,
    /// Chunk size of the chunked push.
    pub chunk_bytes: u64,
    /// Small images pushed per round.
    pub small_images: usize,
    /// Concurrent small-image clients.
    pub clients: usize,
    /// Connections of the manifest load.
    pub connections: usize,
    /// Duration of each manifest load.
    pub duration: Duration,
    /// Load generator (resolved).
    pub load_gen: LoadGen,
}

/// Everything a round needs that stays the same across rounds.
pub struct Bench<'a> {
    /// Sizes and counts.
    pub plan: &'a Plan,
    /// Registry binaries.
    pub launch: &'a Launch,
    /// Token key material.
    pub keys: &'a Keys,
    /// The big blob files.
    pub blobs: &'a Blobs,
    /// Scratch directory; each round's storage is a fresh directory under it.
    pub scratch: &'a Path,
}

impl Bench<'_> {
    /// Starts `kind` on fresh storage, runs every workload in order, records each figure
    /// (or failure) in `results`, then kills the registry and deletes its storage.
    pub async fn run_round(&self, kind: Kind, round: u32, results: &mut Results) {
        eprintln!("== round {round}: {kind}");
        let dir = self.scratch.join(format!("round{round}-{kind}"));
        match Registry::start(kind, self.launch, self.keys, &dir).await {
            Ok(reg) => {
                let failed_before = results.failures().len();
                self.workloads(&reg, round, results).await;
                if results.failures().len() > failed_before {
                    eprintln!("   last lines of the {kind} log:\n{}", reg.log_tail(20));
                }
                if let Err(e) = reg.stop().await {
                    eprintln!("   warning: stopping {kind}: {e:#}");
                }
            }
            Err(e) => results.fail(kind, round, "start", &e),
        }
        // Delete the round's data, then flush, so its writeback cannot slow the next
        // registry's pushes.
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            eprintln!("   warning: removing {}: {e}", dir.display());
        }
        crate::data::sync().await;
    }

    /// The workloads, in order; a failing one is recorded and the rest still run.
    async fn workloads(&self, reg: &Registry, round: u32, results: &mut Results) {
        let kind = reg.kind;
        let plan = self.plan;
        let setup = http_client().and_then(|client| Ok((client, self.keys.token(BIG_REPO)?)));
        let (client, token) = match setup {
            Ok(v) => v,
            Err(e) => {
                results.fail(kind, round, "setup", &e);
                return;
            }
        };
        let ctx = Ctx {
            client,
            base: reg.base.clone(),
        };
        let mut record = |metric: Metric, value: anyhow::Result<f64>| match value {
            Ok(v) => {
                eprintln!("   {:<40} {v:>10.1}", metric.label(plan));
                results.record(kind, metric, v);
            }
            Err(e) => results.fail(kind, round, &metric.label(plan), &e),
        };

        let bytes = self.blobs.monolithic.size;
        record(
            Metric::PushMonolithic,
            ctx.push_monolithic(BIG_REPO, &token, &self.blobs.monolithic)
                .await
                .map(|d| mbps(bytes, d.as_secs_f64())),
        );
        record(
            Metric::PushChunked,
            ctx.push_chunked(BIG_REPO, &token, &self.blobs.chunked, plan.chunk_bytes)
                .await
                .map(|d| mbps(bytes, d.as_secs_f64())),
        );
        record(
            Metric::Pull,
            ctx.pull(BIG_REPO, &token, &self.blobs.chunked)
                .await
                .map(|d| mbps(bytes, d.as_secs_f64())),
        );
        record(Metric::RssBig, reg.peak_rss_mib());

        record(
            Metric::SmallImages,
            self.small_images(&ctx, round)
                .await
                .map(|d| plan.small_images as f64 / d.as_secs_f64().max(1e-9)),
        );

        match self.manifest_load(&ctx).await {
            Ok([head, get]) => {
                for (outcome, rps, p99) in [
                    (head, Metric::HeadRps, Metric::HeadP99),
                    (get, Metric::GetRps, Metric::GetP99),
                ] {
                    if outcome.errors > 0 {
                        eprintln!(
                            "   warning: {} of {} requests failed",
                            outcome.errors, outcome.requests
                        );
                    }
                    record(rps, Ok(outcome.rps));
                    record(p99, Ok(outcome.p99_ms));
                }
            }
            Err(e) => record(Metric::HeadRps, Err(e)),
        }
        record(Metric::RssEnd, reg.peak_rss_mib());
    }

    /// Pushes `plan.small_images` images from `plan.clients` concurrent clients, each into
    /// its own repository; returns the wall time until the last one is done.
    async fn small_images(&self, ctx: &Ctx, round: u32) -> anyhow::Result<Duration> {
        let plan = self.plan;
        let mut jobs = Vec::with_capacity(plan.clients);
        for c in 0..plan.clients {
            let repo = format!("bench/small/c{c}");
            let token = self.keys.token(&repo)?;
            let count = plan.small_images / plan.clients
                + usize::from(c < plan.small_images % plan.clients);
            jobs.push((repo, token, count, c));
        }
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(jobs.len());
        for (repo, token, count, c) in jobs {
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..count {
                    // Distinct per round, client and image, so no blob is ever a duplicate.
                    let seed = (u64::from(round) << 48) | ((c as u64) << 32) | i as u64;
                    ctx.push_image(&repo, &token, &format!("img-{i}"), seed)
                        .await
                        .with_context(|| format!("{repo} image {i}"))?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(started.elapsed())
    }

    /// Pushes one image tagged `latest`, checks a HEAD returns its digest, then loads
    /// HEAD and GET by tag.
    async fn manifest_load(&self, ctx: &Ctx) -> anyhow::Result<[load::Outcome; 2]> {
        let token = self.keys.token(MANIFEST_REPO)?;
        let pushed = ctx
            .push_image(MANIFEST_REPO, &token, "latest", u64::MAX >> 1)
            .await?;
        let url = format!("{}/v2/{MANIFEST_REPO}/manifests/latest", ctx.base);
        let resp = ctx
            .client
            .head(&url)
            .header(AUTHORIZATION, bearer(&token))
            .header(ACCEPT, MANIFEST_ACCEPT)
            .send()
            .await?;
        let resp = expect(resp, StatusCode::OK, "manifest HEAD").await?;
        let served = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        anyhow::ensure!(
            served == pushed,
            "manifest HEAD returned Docker-Content-Digest {served:?}, pushed {pushed}"
        );
        let mut outcomes = Vec::with_capacity(2);
        for method in [Method::HEAD, Method::GET] {
            let spec = load::Spec {
                url: url.clone(),
                method,
                headers: vec![
                    ("Authorization".into(), bearer(&token)),
                    ("Accept".into(), MANIFEST_ACCEPT.into()),
                ],
                connections: self.plan.connections,
                duration: self.plan.duration,
            };
            outcomes.push(load::run(self.plan.load_gen, &spec).await?);
        }
        let [head, get] = outcomes[..] else {
            unreachable!("two methods, two outcomes")
        };
        Ok([head, get])
    }
}

/// A client bound to one registry.
#[derive(Clone)]
struct Ctx {
    client: Client,
    base: String,
}

impl Ctx {
    /// POST + one PUT carrying the whole file; returns the wall time.
    async fn push_monolithic(
        &self,
        repo: &str,
        token: &str,
        blob: &BlobFile,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let location = self.start_upload(repo, token).await?;
        let file = tokio::fs::File::open(&blob.path).await?;
        let body = Body::wrap_stream(ReaderStream::with_capacity(file, STREAM_BUF));
        let resp = self
            .client
            .put(with_digest(&location, &blob.digest))
            .header(AUTHORIZATION, bearer(token))
            .header(CONTENT_TYPE, "application/octet-stream")
            // Explicit length, so the body goes out sized rather than chunk-encoded.
            .header(CONTENT_LENGTH, blob.size)
            .body(body)
            .send()
            .await?;
        expect(resp, StatusCode::CREATED, "monolithic PUT").await?;
        Ok(started.elapsed())
    }

    /// POST, one PATCH per chunk (following each returned Location), then PUT ?digest=;
    /// returns the wall time.
    async fn push_chunked(
        &self,
        repo: &str,
        token: &str,
        blob: &BlobFile,
        chunk: u64,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut location = self.start_upload(repo, token).await?;
        let mut offset = 0u64;
        while offset < blob.size {
            let len = chunk.min(blob.size - offset);
            let mut file = tokio::fs::File::open(&blob.path).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let body = Body::wrap_stream(ReaderStream::with_capacity(file.take(len), STREAM_BUF));
            let resp = self
                .client
                .patch(&location)
                .header(AUTHORIZATION, bearer(token))
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                .header(CONTENT_LENGTH, len)
                .body(body)
                .send()
                .await?;
            let resp = expect(resp, StatusCode::ACCEPTED, "chunk PATCH").await?;
            location = self.location(&resp)?;
            offset += len;
        }
        let resp = self
            .client
            .put(with_digest(&location, &blob.digest))
            .header(AUTHORIZATION, bearer(token))
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        expect(resp, StatusCode::CREATED, "closing PUT").await?;
        Ok(started.elapsed())
    }

    /// GET the blob, discarding the bytes but counting them; returns the wall time.
    async fn pull(&self, repo: &str, token: &str, blob: &BlobFile) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let resp = self
            .client
            .get(format!("{}/v2/{repo}/blobs/{}", self.base, blob.digest))
            .header(AUTHORIZATION, bearer(token))
            .send()
            .await?;
        let mut resp = expect(resp, StatusCode::OK, "blob GET").await?;
        let mut received = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            received += chunk.len() as u64;
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(
            received == blob.size,
            "pulled {received} bytes, expected {}",
            blob.size
        );
        Ok(elapsed)
    }

    /// One small image: a unique ~200-byte config, a unique 1 KiB layer, and an OCI
    /// manifest tagged `tag`. Returns the manifest digest.
    async fn push_image(
        &self,
        repo: &str,
        token: &str,
        tag: &str,
        seed: u64,
    ) -> anyhow::Result<String> {
        let mut layer = vec![0u8; 1024];
        XorShift::new(seed).fill(&mut layer);
        let layer_digest = digest(&layer);
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"berth-bench": seed.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        })
        .to_string()
        .into_bytes();
        let config_digest = digest(&config);
        let config_size = config.len();
        self.push_small_blob(repo, token, config, &config_digest)
            .await?;
        self.push_small_blob(repo, token, layer, &layer_digest)
            .await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": 1024,
            }],
        })
        .to_string()
        .into_bytes();
        let manifest_digest = digest(&manifest);
        let resp = self
            .client
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header(AUTHORIZATION, bearer(token))
            .header(CONTENT_TYPE, OCI_MANIFEST)
            .body(manifest)
            .send()
            .await?;
        expect(resp, StatusCode::CREATED, "manifest PUT").await?;
        Ok(manifest_digest)
    }

    /// POST + PUT ?digest= with the bytes as the body.
    async fn push_small_blob(
        &self,
        repo: &str,
        token: &str,
        bytes: Vec<u8>,
        digest: &str,
    ) -> anyhow::Result<()> {
        let location = self.start_upload(repo, token).await?;
        let resp = self
            .client
            .put(with_digest(&location, digest))
            .header(AUTHORIZATION, bearer(token))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await?;
        expect(resp, StatusCode::CREATED, "blob PUT").await?;
        Ok(())
    }

    /// `POST /v2/<repo>/blobs/uploads/`; returns the absolute upload URL.
    async fn start_upload(&self, repo: &str, token: &str) -> anyhow::Result<String> {
        let resp = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .header(AUTHORIZATION, bearer(token))
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        let resp = expect(resp, StatusCode::ACCEPTED, "upload POST").await?;
        self.location(&resp)
    }

    /// The response's `Location` made absolute: Berth sends a path, Distribution a URL.
    fn location(&self, resp: &Response) -> anyhow::Result<String> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .context("no Location header")?
            .to_str()
            .context("Location is not ASCII")?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_owned()
            } else {
                format!("{}{loc}", self.base)
            },
        )
    }
}

/// One client for a round: plain HTTP/1.1, no proxy from the environment, no overall
/// timeout (a 1 GiB transfer may legitimately take a while), but a connect timeout.
fn http_client() -> anyhow::Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}

/// `Authorization` value for `token`.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Adds `digest=` to an upload URL that may already carry a query (Distribution's
/// `_state`).
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// Passes `resp` through if it has status `want`, else fails with the status and the start
/// of the body (the registry's error JSON).
async fn expect(resp: Response, want: StatusCode, what: &str) -> anyhow::Result<Response> {
    if resp.status() == want {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(400).collect();
    anyhow::bail!("{what}: expected {want}, got {status}: {body}")
}
