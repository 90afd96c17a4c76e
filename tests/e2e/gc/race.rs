//! Acceptance 2: GC at review delay 0 with two berth-gc processes while writers push,
//! re-tag and untag images that reuse a small pool of layers, for `BERTH_GC_RACE_SECS`
//! (default 120). Writers retry a push refused with `MANIFEST_BLOB_UNKNOWN`/`BLOB_UNKNOWN`
//! (the documented client retry when the GC took a blob between upload and manifest).
//! Afterwards every tag pulls and every blob verifies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

const TAGS: usize = 8;
const LAYERS: usize = 6;
const WRITERS: u64 = 4;

/// A tiny deterministic generator (xorshift64*), one per writer.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

#[derive(Default)]
struct Tally {
    pushes: AtomicU64,
    retries: AtomicU64,
    unavailable: AtomicU64,
    tag_deletes: AtomicU64,
    indexes: AtomicU64,
}

fn layer(i: usize) -> Vec<u8> {
    format!("race layer {i} ").repeat(64).into_bytes()
}

async fn code(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

enum Push {
    Done,
    Retry,
    Unavailable,
}

/// One push attempt: HEAD each blob and upload it when missing, then PUT the manifest.
async fn push_once(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    blobs: &[Vec<u8>],
    manifest: &[u8],
    reference: &str,
    media_type: &str,
) -> Push {
    for b in blobs {
        let d = Digest::sha256(b);
        let head = http
            .head(format!("{base}/blobs/{d}"))
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap();
        if head.status() == StatusCode::OK {
            continue;
        }
        let r = push_blob(http, base, jwt, b).await;
        match r.status() {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => return Push::Unavailable,
            s => {
                let c = code(r).await;
                assert_eq!(c, "BLOB_UNKNOWN", "blob upload answered {s} {c}");
                return Push::Retry;
            }
        }
    }
    let r = http
        .put(format!("{base}/manifests/{reference}"))
        .bearer_auth(jwt)
        .header("content-type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    match r.status() {
        StatusCode::CREATED => Push::Done,
        StatusCode::SERVICE_UNAVAILABLE => Push::Unavailable,
        s => {
            let c = code(r).await;
            assert!(
                c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UNKNOWN",
                "manifest push answered {s} {c}"
            );
            Push::Retry
        }
    }
}

async fn writer(
    http: reqwest::Client,
    base: String,
    jwt: String,
    id: u64,
    until: Instant,
    tally: Arc<Tally>,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        if rng.below(5) == 0 {
            let tag = format!("t{}", rng.below(TAGS));
            let r = http
                .delete(format!("{base}/manifests/{tag}"))
                .bearer_auth(&jwt)
                .send()
                .await
                .unwrap();
            assert!(
                r.status() == StatusCode::ACCEPTED
                    || r.status() == StatusCode::NOT_FOUND
                    || r.status() == StatusCode::SERVICE_UNAVAILABLE,
                "tag delete answered {}",
                r.status()
            );
            tally.tag_deletes.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Configs repeat too (few seeds), so whole manifests get re-pushed and re-tagged.
        let config = format!("{{\"seed\":\"{}\"}}", rng.below(12)).into_bytes();
        let (l1, l2) = (rng.below(LAYERS), rng.below(LAYERS));
        let layers = [layer(l1), layer(l2)];
        let c = Digest::sha256(&config);
        let refs: Vec<(Digest, usize)> = layers
            .iter()
            .map(|l| (Digest::sha256(l), l.len()))
            .collect();
        let layer_refs: Vec<(&Digest, usize)> = refs.iter().map(|(d, s)| (d, *s)).collect();
        let manifest = crate::support::image_manifest((&c, config.len()), &layer_refs, json!({}));
        let reference = if rng.below(6) == 0 {
            Digest::sha256(&manifest).to_string()
        } else {
            format!("t{}", rng.below(TAGS))
        };
        let mut blobs = vec![config];
        blobs.extend(layers);
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts < 50, "writer {id} push {n} kept failing");
            match push_once(
                &http,
                &base,
                &jwt,
                &blobs,
                &manifest,
                &reference,
                MANIFEST_TYPE,
            )
            .await
            {
                Push::Done => break,
                Push::Retry => tally.retries.fetch_add(1, Ordering::Relaxed),
                Push::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    tally.unavailable.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        tally.pushes.fetch_add(1, Ordering::Relaxed);
        if rng.below(6) == 0 {
            // An index over the image just pushed, under its own tags: index creation
            // racing the manifest worker (the child may be collected before the index
            // lands; then the push is refused and retried, child first).
            let child = Digest::sha256(&manifest).to_string();
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": INDEX_TYPE,
                "manifests": [{"mediaType": MANIFEST_TYPE, "digest": child, "size": manifest.len()}],
            }))
            .unwrap();
            let tag = format!("x{}", rng.below(4));
            let mut attempts = 0;
            loop {
                attempts += 1;
                assert!(attempts < 50, "writer {id} index push kept failing");
                let outcome =
                    match push_once(&http, &base, &jwt, &blobs, &manifest, &child, MANIFEST_TYPE)
                        .await
                    {
                        Push::Done => {
                            push_once(&http, &base, &jwt, &[], &index, &tag, INDEX_TYPE).await
                        }
                        other => other,
                    };
                match outcome {
                    Push::Done => break,
                    Push::Retry => tally.retries.fetch_add(1, Ordering::Relaxed),
                    Push::Unavailable => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        tally.unavailable.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            tally.indexes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn every_tag_pulls(stack: &Stack, base: &str, jwt: &str) -> usize {
    let r = stack
        .http
        .get(format!("{base}/tags/list?n=1000"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    let tags: Vec<String> = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for t in &tags {
        pull_verified(&stack.http, base, jwt, t).await;
    }
    tags.len()
}

async fn gc_during_pushes_never_breaks_an_image(stack: Stack) {
    let secs: u64 = std::env::var("BERTH_GC_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let env = [
        FAST_GC[0],
        FAST_GC[1],
        FAST_GC[2],
        ("BERTH_GC_REVIEW_DELAY", "0s"),
    ];
    let (gc1, gc2) = tokio::join!(stack.start_gc(&env), stack.start_gc(&env));
    let g = stack.create_group("race", None).await;
    stack
        .create_project(g["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let names = ["race/app", "race/app/other"];
    let scopes: Vec<String> = names
        .iter()
        .map(|n| format!("repository:{n}:pull,push,delete"))
        .collect();
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    // A token that outlives the run.
    let jwt = stack
        .registry_token(Some(("root", &stack.root_token)), &scope_refs)
        .await;
    let until = Instant::now() + Duration::from_secs(secs);
    let tally = Arc::new(Tally::default());
    let mut writers = Vec::new();
    for id in 0..WRITERS {
        let base = format!("{}/v2/{}", stack.registry.url, names[(id % 2) as usize]);
        writers.push(tokio::spawn(writer(
            stack.http.clone(),
            base,
            jwt.clone(),
            id,
            until,
            tally.clone(),
        )));
    }
    for w in writers {
        if let Err(e) = w.await {
            let log = stack.log_text();
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                .take(40)
                .collect();
            panic!("writer failed: {e}\n{}", tail.join("\n"));
        }
    }
    // Right after the writers stop, with GC still running, then after it settles.
    let mut tagged = 0;
    for n in names {
        tagged += every_tag_pulls(&stack, &format!("{}/v2/{n}", stack.registry.url), &jwt).await;
    }
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !queues_empty(&db).await {
        if Instant::now() > deadline {
            let log = stack.log_text();
            let warns: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(30)
                .collect();
            let left = blob_q::Entity::find().all(&db.read).await.unwrap();
            panic!("queues did not drain: {left:?}\n{}", warns.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in names {
        every_tag_pulls(&stack, &format!("{}/v2/{n}", stack.registry.url), &jwt).await;
    }
    // Every blob row has its bytes. (Files without a row are possible, e.g. a push that
    // gave up after its bytes were written; `berth-gc check` reports those.)
    let rows: BTreeSet<String> = blobs::Entity::find()
        .all(&db.read)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect();
    let files = store_digests(stack.store_path());
    let missing: Vec<_> = rows.difference(&files).collect();
    assert!(missing.is_empty(), "blob rows without bytes: {missing:?}");
    let orphans = files.difference(&rows).count();
    let collected_m = runs(&gc1.url, &["worker=\"manifest\"", "result=\"dangling\""]).await
        + runs(&gc2.url, &["worker=\"manifest\"", "result=\"dangling\""]).await;
    let collected_b = runs(&gc1.url, &["worker=\"blob\"", "result=\"dangling\""]).await
        + runs(&gc2.url, &["worker=\"blob\"", "result=\"dangling\""]).await;
    let errors =
        runs(&gc1.url, &["result=\"error\""]).await + runs(&gc2.url, &["result=\"error\""]).await;
    eprintln!(
        "acceptance 2 ({secs} s, {WRITERS} writers): {} pushes (and {} indexes), {} tag deletes, {} pushes retried \
         (blob collected under them), {} answered 503; GC collected {collected_m} manifests and \
         {collected_b} blobs ({errors} reviews rolled back: lost races, run again); {tagged} tags all pull and verify; {orphans} orphan files",
        tally.pushes.load(Ordering::Relaxed),
        tally.indexes.load(Ordering::Relaxed),
        tally.tag_deletes.load(Ordering::Relaxed),
        tally.retries.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
    );
    assert!(
        collected_m > 0 && collected_b > 0,
        "the GC must have raced the writers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    if let Some(s) = Stack::start_with(berth_test_support::Backend::Sqlite, options("0s")).await {
        gc_during_pushes_never_breaks_an_image(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    if let Some(s) = Stack::start_with(berth_test_support::Backend::Postgres, options("0s")).await {
        gc_during_pushes_never_breaks_an_image(s).await;
    }
}
