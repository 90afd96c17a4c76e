//! Online garbage collection end to end (SPEC 6.1, issue 5): the real berth-gc next to the
//! registry. Acceptance 1 (exactly the unreferenced manifests and blobs go, rows and
//! bytes, and everything tagged still pulls), acceptance 3 (two gc processes never review
//! the same row) and acceptance 2 (GC at delay 0 while writers push, re-tag and untag).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_db::entity::{
    blobs, gc_blob_review_queue as blob_q, gc_manifest_review_queue as manifest_q, manifests,
};
use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder, Set};
use serde_json::json;

use crate::stack::{Options, Stack};

mod race;
mod two_workers;

pub(crate) const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Knobs that make berth-gc react within a second in tests.
pub(crate) const FAST_GC: [(&str, &str); 3] = [
    ("BERTH_GC_INTERVAL", "100ms"),
    ("BERTH_GC_MAX_BACKOFF", "500ms"),
    ("BERTH_GC_QUEUE_METRICS_INTERVAL", "200ms"),
];

/// Registry and auth with `delay` as the GC review delay.
pub(crate) fn options(delay: &str) -> Options {
    let env = vec![("BERTH_GC_REVIEW_DELAY".to_owned(), delay.to_owned())];
    Options {
        auth_env: env.clone(),
        registry_env: env,
        ..Options::default()
    }
}

/// Every committed blob file in the store, as digests.
pub(crate) fn store_digests(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let base = root.join("blobs");
    let Ok(algs) = std::fs::read_dir(&base) else {
        return out;
    };
    for alg in algs.flatten() {
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        for prefix in std::fs::read_dir(alg.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                out.insert(format!("{alg_name}:{}", f.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Sum of `berth_gc_runs_total` samples whose labels contain every one of `labels`.
pub(crate) async fn runs(gc_url: &str, labels: &[&str]) -> u64 {
    let text = reqwest::get(format!("{gc_url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("berth_gc_runs_total{"))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Upload a blob monolithically.
pub(crate) async fn push_blob(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    blob: &[u8],
) -> reqwest::Response {
    let digest = Digest::sha256(blob);
    http.post(format!("{base}/blobs/uploads/?digest={digest}"))
        .bearer_auth(jwt)
        .body(blob.to_vec())
        .send()
        .await
        .expect("push blob")
}

/// Push config (seeded) and layers, then the manifest as `reference` (a tag, or its own
/// digest when `None`); returns the manifest digest.
async fn push(
    stack: &Stack,
    base: &str,
    jwt: &str,
    seed: &str,
    layers: &[&[u8]],
    tag: Option<&str>,
) -> String {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let r = push_blob(&stack.http, base, jwt, &config).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c = Digest::sha256(&config);
    let mut refs = Vec::new();
    for l in layers {
        let r = push_blob(&stack.http, base, jwt, l).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        refs.push((Digest::sha256(l), l.len()));
    }
    let layer_refs: Vec<(&Digest, usize)> = refs.iter().map(|(d, s)| (d, *s)).collect();
    let manifest = crate::support::image_manifest((&c, config.len()), &layer_refs, json!({}));
    let digest = Digest::sha256(&manifest).to_string();
    let reference = tag.map(str::to_owned).unwrap_or_else(|| digest.clone());
    let r = stack
        .http
        .put(format!("{base}/manifests/{reference}"))
        .bearer_auth(jwt)
        .header("content-type", MANIFEST_TYPE)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    digest
}

/// GET `reference` and every blob it names, verifying each digest; returns the blob
/// digests. Panics on anything missing or corrupt.
pub(crate) async fn pull_verified(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    reference: &str,
) -> Vec<String> {
    let r = http
        .get(format!("{base}/manifests/{reference}"))
        .bearer_auth(jwt)
        .header("accept", format!("{MANIFEST_TYPE}, {INDEX_TYPE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{base} {reference}: {:?}",
        r.text().await
    );
    let body = r.bytes().await.unwrap();
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    if m["mediaType"] == INDEX_TYPE {
        let mut digests = Vec::new();
        for child in m["manifests"].as_array().unwrap() {
            let d = child["digest"].as_str().unwrap().to_owned();
            digests.extend(Box::pin(pull_verified(http, base, jwt, &d)).await);
        }
        return digests;
    }
    let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_owned()];
    for l in m["layers"].as_array().unwrap() {
        digests.push(l["digest"].as_str().unwrap().to_owned());
    }
    for d in &digests {
        let r = http
            .get(format!("{base}/blobs/{d}"))
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{base} {reference}: blob {d}");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            Digest::sha256(&bytes).to_string(),
            *d,
            "{base}: blob {d} corrupt"
        );
    }
    digests
}

async fn queues_empty(db: &berth_db::Db) -> bool {
    blob_q::Entity::find().count(&db.read).await.unwrap() == 0
        && manifest_q::Entity::find().count(&db.read).await.unwrap() == 0
}

async fn collects_exactly_the_unreferenced(stack: Stack) {
    let gc = stack
        .start_gc(&[
            FAST_GC[0],
            FAST_GC[1],
            FAST_GC[2],
            ("BERTH_GC_REVIEW_DELAY", "2s"),
        ])
        .await;
    let g = stack.create_group("gca", None).await;
    stack
        .create_project(g["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let (one, two) = ("gca/app", "gca/app/tools");
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[
                &format!("repository:{one}:pull,push,delete"),
                &format!("repository:{two}:pull,push,delete"),
            ],
        )
        .await;
    let (a, b) = (
        format!("{}/v2/{one}", stack.registry.url),
        format!("{}/v2/{two}", stack.registry.url),
    );
    let base_layer: &[u8] = b"shared base layer";
    // Three tagged images sharing the base layer, in two repositories.
    let m1 = push(
        &stack,
        &a,
        &jwt,
        "one",
        &[base_layer, b"layer one"],
        Some("one"),
    )
    .await;
    let m2 = push(
        &stack,
        &a,
        &jwt,
        "two",
        &[base_layer, b"layer two"],
        Some("two"),
    )
    .await;
    let m3 = push(
        &stack,
        &b,
        &jwt,
        "three",
        &[base_layer, b"layer three"],
        Some("three"),
    )
    .await;
    // An untagged manifest left behind, and one pushed by digest then deleted.
    let m4 = push(&stack, &a, &jwt, "four", &[base_layer, b"layer four"], None).await;
    let m5 = push(&stack, &b, &jwt, "five", &[base_layer, b"layer five"], None).await;
    for (url, what) in [
        (format!("{a}/manifests/two"), "tag two"),
        (format!("{b}/manifests/{m5}"), "manifest five"),
    ] {
        let r = stack
            .http
            .delete(url)
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "delete {what}");
    }
    let sha = |b: &[u8]| Digest::sha256(b).to_string();
    let seed = |s: &str| sha(format!("{{\"seed\":\"{s}\"}}").as_bytes());
    let kept: BTreeSet<String> = [
        sha(base_layer),
        seed("one"),
        sha(b"layer one"),
        seed("three"),
        sha(b"layer three"),
    ]
    .into_iter()
    .collect();
    let all_pushed = store_digests(stack.store_path());
    assert_eq!(all_pushed.len(), 11, "{all_pushed:?}");

    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    loop {
        let blob_rows = blobs::Entity::find().count(&db.read).await.unwrap();
        if blob_rows == kept.len() as u64 && queues_empty(&db).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GC did not finish: {blob_rows} blob rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    // Nothing else is pending: wait a few more review rounds and look again.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rows: BTreeSet<String> = blobs::Entity::find()
        .all(&db.read)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect();
    assert_eq!(rows, kept, "blob rows");
    assert_eq!(store_digests(stack.store_path()), kept, "store files");
    let ms: BTreeSet<String> = manifests::Entity::find()
        .order_by_asc(manifests::Column::Id)
        .all(&db.read)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.digest)
        .collect();
    assert_eq!(
        ms,
        BTreeSet::from([m1.clone(), m3.clone()]),
        "manifest rows"
    );
    assert!(!ms.contains(&m2) && !ms.contains(&m4));
    assert!(queues_empty(&db).await);

    // Everything tagged pulls and verifies.
    let mut pulled = BTreeSet::new();
    pulled.extend(pull_verified(&stack.http, &a, &jwt, "one").await);
    pulled.extend(pull_verified(&stack.http, &b, &jwt, "three").await);
    assert_eq!(pulled, kept);
    // And with a real client: skopeo copies each tagged image out, verifying every digest.
    if crate::podman::clients_available() {
        let clients = crate::podman::Clients::new(&stack);
        for (i, image) in [format!("{one}:one"), format!("{two}:three")]
            .iter()
            .enumerate()
        {
            let dest = clients.dir.path().join(format!("out{i}"));
            clients
                .skopeo(&[
                    "copy",
                    "--src-tls-verify=false",
                    "--src-creds",
                    &format!("root:{}", stack.root_token),
                    &format!("docker://{}", clients.image(image)),
                    &format!("oci:{}:x", dest.display()),
                ])
                .unwrap_or_else(|e| panic!("skopeo copy {image}: {e}"));
        }
    }
    // What went is gone from the API too.
    for (base, reference) in [(&a, "two"), (&a, m4.as_str()), (&a, m2.as_str())] {
        let r = stack
            .http
            .get(format!("{base}/manifests/{reference}"))
            .bearer_auth(&jwt)
            .header("accept", MANIFEST_TYPE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{reference}");
    }
    // Two manifests deleted (two, four), six blobs (the configs and own layers of two, four
    // and five); every other review kept what it looked at.
    assert_eq!(
        runs(&gc.url, &["worker=\"manifest\"", "result=\"dangling\""]).await,
        2
    );
    assert_eq!(
        runs(&gc.url, &["worker=\"blob\"", "result=\"dangling\""]).await,
        6
    );
    assert_eq!(runs(&gc.url, &["result=\"error\""]).await, 0);
    // And the offline check finds nothing wrong (non-zero exit while a problem remains).
    let check = std::process::Command::new(crate::support::binary("berth-gc"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("BERTH_DATABASE_URL", &stack.db.url)
        .env(
            "BERTH_STORAGE_URL",
            format!("file://{}", stack.store_path().display()),
        )
        .args(["--no-migrate", "check"])
        .output()
        .expect("run berth-gc check");
    assert!(
        check.status.success(),
        "berth-gc check: {}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!("acceptance 1: collected 2 manifests and 6 blobs {took:?} after the last write");
}

mod collects_exactly_the_unreferenced {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        if let Some(s) = Stack::start_with(berth_test_support::Backend::Sqlite, options("2s")).await
        {
            collects_exactly_the_unreferenced(s).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(s) =
            Stack::start_with(berth_test_support::Backend::Postgres, options("2s")).await
        {
            collects_exactly_the_unreferenced(s).await;
        }
    }
}
