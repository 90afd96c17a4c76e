//! Usage facts (issue 4): the registry counts manifest GETs (not HEADs) in memory and
//! writes them in batches; the API shows `pull_count` and `last_pulled_at` of tags and
//! repositories, and `last_pushed_at` of repositories.

use std::time::{Duration, Instant};

use berth_core::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stack::{Options, Stack, urlencode};

/// The sum of the registry's Prometheus samples whose line starts with `name`.
pub(crate) async fn metric(stack: &Stack, name: &str) -> f64 {
    let text = stack
        .http
        .get(format!("{}/metrics", stack.registry.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Push one small image to `repo` as `tag`; returns the manifest digest.
async fn push(stack: &Stack, jwt: &str, repo: &str, tag: &str) -> Digest {
    let base = format!("{}/v2/{repo}", stack.registry.url);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = vec![b'u'; 64];
    for blob in [&config, &layer] {
        let digest = Digest::sha256(blob);
        let r = stack
            .http
            .post(format!("{base}/blobs/uploads/?digest={digest}"))
            .bearer_auth(jwt)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }
    let layer_digest = Digest::sha256(&layer);
    let manifest = crate::support::image_manifest(
        (&Digest::sha256(&config), config.len()),
        &[(&layer_digest, layer.len())],
        json!({}),
    );
    let r = stack
        .http
        .put(format!("{base}/manifests/{tag}"))
        .bearer_auth(jwt)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    Digest::sha256(&manifest)
}

async fn manifest(stack: &Stack, jwt: &str, method: Method, repo: &str, reference: &str) {
    let r = stack
        .http
        .request(
            method.clone(),
            format!("{}/v2/{repo}/manifests/{reference}", stack.registry.url),
        )
        .bearer_auth(jwt)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{method} {reference}");
}

async fn run(stack: Stack) {
    let group = stack.create_group("g", None).await;
    let gid = group["id"].as_i64().unwrap();
    let app = stack.create_project(gid, "app", "public", "enabled").await;
    let pid = app["id"].as_i64().unwrap();
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &["repository:g/app:pull,push"],
        )
        .await;
    let digest = push(&stack, &jwt, "g/app", "v1").await;
    let token = stack.root_token.clone();
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{}/registry/repositories", urlencode("g/app")),
            &token,
            None,
            StatusCode::OK,
        )
        .await;
    let repo = &repos[0];
    let rid = repo["id"].as_i64().unwrap();
    assert_eq!(repo["pull_count"], json!(0));
    assert_eq!(repo["last_pulled_at"], Value::Null);
    assert!(repo["last_pushed_at"].is_string(), "{repo}");
    let tag_path = format!("/projects/{pid}/registry/repositories/{rid}/tags/v1");
    let tag = stack
        .ok(Method::GET, &tag_path, &token, None, StatusCode::OK)
        .await;
    assert_eq!(tag["pull_count"], json!(0));
    assert_eq!(tag["last_pulled_at"], Value::Null);

    let flushes_before = metric(&stack, "berth_registry_usage_flushes_total").await;
    // Three GETs by tag (the later ones served from the manifest cache), two HEADs (not
    // counted), and 20 GETs by digest (counted for the repository only).
    let started = chrono::Utc::now();
    for _ in 0..3 {
        manifest(&stack, &jwt, Method::GET, "g/app", "v1").await;
    }
    for _ in 0..2 {
        manifest(&stack, &jwt, Method::HEAD, "g/app", "v1").await;
    }
    for _ in 0..20 {
        manifest(&stack, &jwt, Method::GET, "g/app", &digest.to_string()).await;
    }

    // Flushed every second here (BERTH_USAGE_FLUSH_INTERVAL=1s): poll rather than sleep a
    // fixed time, so a slow machine does not fail the test.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (tag, repo) = loop {
        let tag = stack
            .ok(Method::GET, &tag_path, &token, None, StatusCode::OK)
            .await;
        let repo = stack
            .ok(
                Method::GET,
                &format!("/registry/repositories/{rid}"),
                &token,
                None,
                StatusCode::OK,
            )
            .await;
        if tag["pull_count"] == json!(3) && repo["pull_count"] == json!(23) {
            break (tag, repo);
        }
        assert!(
            Instant::now() < deadline,
            "counts never arrived: tag {tag}, repository {repo}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for v in [&tag, &repo] {
        let at: chrono::DateTime<chrono::Utc> = v["last_pulled_at"]
            .as_str()
            .unwrap_or_else(|| panic!("last_pulled_at in {v}"))
            .parse()
            .unwrap();
        assert!(at >= started - chrono::Duration::seconds(1), "{v}");
    }

    // No write per pull: the registry reports its flush transactions. 23 counted pulls
    // (finished well within a couple of flush intervals) arrived in at most a few
    // transactions, not 23. Counting the registry's own writes is exact and does not
    // depend on catching the database between two flushes (which would race the timer).
    // The bound allows for a slow machine whose pulls straddle several 1 s ticks.
    let flushes = metric(&stack, "berth_registry_usage_flushes_total").await - flushes_before;
    assert!(flushes >= 1.0, "no flush recorded");
    assert!(
        flushes <= 5.0,
        "{flushes} flush transactions for 23 pulls: looks like a write per pull"
    );
    let pulls = metric(&stack, "berth_registry_usage_pulls_flushed_total").await;
    assert_eq!(pulls, 23.0, "HEADs must not count");

    // HEADs did not count, and nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tag = stack
        .ok(Method::GET, &tag_path, &token, None, StatusCode::OK)
        .await;
    assert_eq!(tag["pull_count"], json!(3));
}

/// Counts still in memory are written when the registry shuts down gracefully.
async fn run_shutdown(mut stack: Stack) {
    let group = stack.create_group("g", None).await;
    let gid = group["id"].as_i64().unwrap();
    let app = stack.create_project(gid, "app", "public", "enabled").await;
    let pid = app["id"].as_i64().unwrap();
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &["repository:g/app:pull,push"],
        )
        .await;
    push(&stack, &jwt, "g/app", "v1").await;
    for _ in 0..2 {
        manifest(&stack, &jwt, Method::GET, "g/app", "v1").await;
    }
    let token = stack.root_token.clone();
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories"),
            &token,
            None,
            StatusCode::OK,
        )
        .await;
    let rid = repos[0]["id"].as_i64().unwrap();
    // The interval is an hour: nothing is written before shutdown.
    assert_eq!(repos[0]["pull_count"], json!(0));
    stack.registry.terminate();
    let tag = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories/{rid}/tags/v1"),
            &token,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(tag["pull_count"], json!(2), "{tag}");
    assert!(tag["last_pulled_at"].is_string(), "{tag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_facts_flushed_at_shutdown() {
    let opts = Options {
        registry_env: vec![("BERTH_USAGE_FLUSH_INTERVAL".into(), "1h".into())],
        ..Default::default()
    };
    for backend in [
        berth_test_support::Backend::Sqlite,
        berth_test_support::Backend::Postgres,
    ] {
        let Some(stack) = Stack::start_with(backend, opts.clone()).await else {
            continue;
        };
        run_shutdown(stack).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_facts_counted_in_batches() {
    let opts = Options {
        registry_env: vec![("BERTH_USAGE_FLUSH_INTERVAL".into(), "1s".into())],
        ..Default::default()
    };
    for backend in [
        berth_test_support::Backend::Sqlite,
        berth_test_support::Backend::Postgres,
    ] {
        let Some(stack) = Stack::start_with(backend, opts.clone()).await else {
            continue;
        };
        run(stack).await;
    }
}
