//! Every path that changes registry content at once, for `BERTH_CONTENT_RACE_SECS`
//! (default 60): registry pushes, management-API tag and manifest deletes into the same
//! repositories, and berth-gc collecting with a 1 s review delay. No answer may be a 5xx
//! (a deadlock or lost race must never reach a client), and afterwards every image whose
//! push was acknowledged and not deleted pulls intact, while every deleted tag is gone.
//!
//! Each writer owns its tags and its manifests (its id is in every config), so its model of
//! what must exist is exact; the layers come from one small shared pool, so blob reviews,
//! uploads and manifest writes of different writers race on the same rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Method;

use super::*;

const WRITERS: u64 = 4;
const TAGS: usize = 6;
const LAYERS: usize = 5;

#[derive(Default)]
struct Tally {
    pushes: AtomicU64,
    push_retries: AtomicU64,
    tag_deletes: AtomicU64,
    manifest_deletes: AtomicU64,
}

/// Tiny deterministic generator (xorshift64*), one per writer.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

fn layer(i: usize) -> Vec<u8> {
    format!("content race layer {i} ").repeat(48).into_bytes()
}

async fn code(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Push blobs then the manifest under `tag`; `false` when the GC took a blob in between
/// (the documented client retry: push again).
async fn push(ctx: &Ctx, blobs: &[Vec<u8>], manifest: &[u8], tag: &str) -> bool {
    for b in blobs {
        let d = Digest::sha256(b);
        let head = ctx
            .http
            .head(format!("{}/blobs/{d}", ctx.base))
            .bearer_auth(&ctx.jwt)
            .send()
            .await
            .unwrap();
        assert!(
            !head.status().is_server_error(),
            "blob HEAD answered {}",
            head.status()
        );
        if head.status() == StatusCode::OK {
            continue;
        }
        let r = push_blob(&ctx.http, &ctx.base, &ctx.jwt, b).await;
        let s = r.status();
        assert!(
            s == StatusCode::CREATED,
            "blob upload answered {s} {}",
            code(r).await
        );
    }
    let r = ctx
        .http
        .put(format!("{}/manifests/{tag}", ctx.base))
        .bearer_auth(&ctx.jwt)
        .header("content-type", MANIFEST_TYPE)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    let s = r.status();
    if s == StatusCode::CREATED {
        return true;
    }
    let c = code(r).await;
    assert!(
        s.is_client_error() && (c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UNKNOWN"),
        "manifest push answered {s} {c}"
    );
    false
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    api: String,
    token: String,
    jwt: String,
}

/// One writer: pushes its own images under its own tags, deletes its tags and manifests
/// through the management API, and returns what must exist afterwards (tag → digest).
async fn writer(ctx: Ctx, id: u64, until: Instant, tally: Arc<Tally>) -> BTreeMap<String, Digest> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut model: BTreeMap<String, Digest> = BTreeMap::new();
    while Instant::now() < until {
        let tag = format!("w{id}-t{}", rng.below(TAGS));
        match rng.below(6) {
            0 => {
                let r = ctx
                    .http
                    .delete(format!("{}/tags/{tag}", ctx.api))
                    .header("private-token", &ctx.token)
                    .send()
                    .await
                    .unwrap();
                let s = r.status();
                assert!(
                    s == StatusCode::OK || s == StatusCode::NOT_FOUND,
                    "API tag delete answered {s}: {:?}",
                    r.text().await
                );
                assert_eq!(
                    s == StatusCode::OK,
                    model.remove(&tag).is_some(),
                    "tag {tag} answered {s}"
                );
                tally.tag_deletes.fetch_add(1, Ordering::Relaxed);
            }
            1 => {
                let Some(digest) = model.get(&tag).cloned() else {
                    continue;
                };
                let r = ctx
                    .http
                    .delete(format!("{}/manifests/{digest}", ctx.api))
                    .header("private-token", &ctx.token)
                    .send()
                    .await
                    .unwrap();
                let s = r.status();
                assert_eq!(
                    s,
                    StatusCode::OK,
                    "API manifest delete answered {s}: {:?}",
                    r.text().await
                );
                // Every tag of this writer pointing at it went with it.
                model.retain(|_, d| *d != digest);
                tally.manifest_deletes.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                // Few configs per writer: manifests repeat, so tags move between them and
                // manifests are re-pushed after the GC or a delete took them.
                let config = format!("{{\"writer\":{id},\"seed\":{}}}", rng.below(4)).into_bytes();
                let layers = [layer(rng.below(LAYERS)), layer(rng.below(LAYERS))];
                let c = Digest::sha256(&config);
                let refs: Vec<(Digest, usize)> = layers
                    .iter()
                    .map(|l| (Digest::sha256(l), l.len()))
                    .collect();
                let layer_refs: Vec<(&Digest, usize)> = refs.iter().map(|(d, s)| (d, *s)).collect();
                let manifest =
                    crate::support::image_manifest((&c, config.len()), &layer_refs, json!({}));
                let mut blobs = vec![config];
                blobs.extend(layers);
                let mut attempts = 0;
                while !push(&ctx, &blobs, &manifest, &tag).await {
                    attempts += 1;
                    assert!(attempts < 50, "writer {id}: push of {tag} kept failing");
                    tally.push_retries.fetch_add(1, Ordering::Relaxed);
                }
                model.insert(tag, Digest::sha256(&manifest));
                tally.pushes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    model
}

async fn every_path_at_once(stack: Stack) {
    let secs: u64 = std::env::var("BERTH_CONTENT_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let env = [
        FAST_GC[0],
        FAST_GC[1],
        FAST_GC[2],
        ("BERTH_GC_REVIEW_DELAY", "1s"),
    ];
    let gc = stack.start_gc(&env).await;
    let g = stack.create_group("race", None).await;
    let project = stack
        .create_project(g["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let project_id = project["id"].as_i64().unwrap();
    let names = ["race/app", "race/app/other"];
    let scopes: Vec<String> = names
        .iter()
        .map(|n| format!("repository:{n}:pull,push,delete"))
        .collect();
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let jwt = stack
        .registry_token(Some(("root", &stack.root_token)), &scope_refs)
        .await;
    // Create both repositories, then learn their ids for the API paths.
    for n in names {
        let base = format!("{}/v2/{n}", stack.registry.url);
        let config = b"{}".to_vec();
        let c = Digest::sha256(&config);
        let manifest = crate::support::image_manifest((&c, config.len()), &[], json!({}));
        let ctx = Ctx {
            http: stack.http.clone(),
            base,
            api: String::new(),
            token: String::new(),
            jwt: jwt.clone(),
        };
        assert!(push(&ctx, &[config], &manifest, "seed").await);
    }
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{project_id}/registry/repositories"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    let repo_id = |path: &str| -> i64 {
        repos
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == path)
            .and_then(|r| r["id"].as_i64())
            .unwrap()
    };
    let until = Instant::now() + Duration::from_secs(secs);
    let tally = Arc::new(Tally::default());
    let mut writers = Vec::new();
    for id in 0..WRITERS {
        let name = names[(id % 2) as usize];
        let ctx = Ctx {
            http: stack.http.clone(),
            base: format!("{}/v2/{name}", stack.registry.url),
            api: format!(
                "{}/api/v4/projects/{project_id}/registry/repositories/{}",
                stack.auth.url,
                repo_id(name)
            ),
            token: stack.root_token.clone(),
            jwt: jwt.clone(),
        };
        writers.push((
            id,
            name,
            tokio::spawn(writer(ctx, id, until, tally.clone())),
        ));
    }
    let mut expected = Vec::new();
    for (id, name, w) in writers {
        match w.await {
            Ok(model) => expected.push((id, name, model)),
            Err(e) => {
                let log = stack.log_text();
                let tail: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                    .take(40)
                    .collect();
                panic!("writer failed: {e}\n{}", tail.join("\n"));
            }
        }
    }
    // Let the GC pass over what the run left (review delay 1 s), then check every image.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut images = 0;
    for (id, name, model) in &expected {
        let base = format!("{}/v2/{name}", stack.registry.url);
        for (tag, digest) in model {
            let r = stack
                .http
                .get(format!("{base}/manifests/{tag}"))
                .bearer_auth(&jwt)
                .header("accept", MANIFEST_TYPE)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{name}:{tag} lost");
            let body = r.bytes().await.unwrap();
            assert_eq!(
                Digest::sha256(&body),
                *digest,
                "{name}:{tag} points elsewhere"
            );
            pull_verified(&stack.http, &base, &jwt, tag).await;
            images += 1;
        }
        for t in 0..TAGS {
            let tag = format!("w{id}-t{t}");
            if model.contains_key(&tag) {
                continue;
            }
            let r = stack
                .http
                .head(format!("{base}/manifests/{tag}"))
                .bearer_auth(&jwt)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::NOT_FOUND,
                "{name}:{tag} should be deleted"
            );
        }
    }
    let collected = runs(&gc.url, &["result=\"dangling\""]).await;
    eprintln!(
        "content race ({secs} s, {WRITERS} writers): {} pushes ({} retried after GC took a blob), {} API tag deletes, \
         {} API manifest deletes, GC collected {collected}; {images} images pull intact, no 5xx",
        tally.pushes.load(Ordering::Relaxed),
        tally.push_retries.load(Ordering::Relaxed),
        tally.tag_deletes.load(Ordering::Relaxed),
        tally.manifest_deletes.load(Ordering::Relaxed),
    );
    assert!(collected > 0, "the GC must have raced the writers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    if let Some(s) = Stack::start_with(berth_test_support::Backend::Sqlite, options("1s")).await {
        every_path_at_once(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    if let Some(s) = Stack::start_with(berth_test_support::Backend::Postgres, options("1s")).await {
        every_path_at_once(s).await;
    }
}
