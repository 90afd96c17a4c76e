//! Online garbage collection end to end (issue 5): the real berth-gc next to the
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

mod content_race;
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

/// The config and layer digests a manifest names.
fn manifest_blobs(manifest: &[u8]) -> BTreeSet<String> {
    let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let mut out = BTreeSet::from([m["config"]["digest"].as_str().unwrap().to_owned()]);
    for l in m["layers"].as_array().unwrap() {
        out.insert(l["digest"].as_str().unwrap().to_owned());
    }
    out
}

/// The layer digests of a manifest, in order.
fn manifest_layers(manifest: &[u8]) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// `podman build` of `local` from the shared context: FROM scratch, the shared base file
/// first (the same layer for every image), then the image's own file.
fn build(c: &crate::podman::Clients, ctx: &Path, local: &str, own: &str) {
    let file = ctx.join(format!("Containerfile.{own}"));
    std::fs::write(ctx.join(format!("{own}.txt")), format!("layer {own}\n")).unwrap();
    std::fs::write(
        &file,
        format!("FROM scratch\nCOPY base.txt /base.txt\nCOPY {own}.txt /own.txt\n"),
    )
    .unwrap();
    c.podman(&[
        "build",
        "--quiet",
        "-f",
        &file.display().to_string(),
        "-t",
        local,
        &ctx.display().to_string(),
    ])
    .unwrap_or_else(|e| panic!("podman build {local}: {e}"));
}

/// `podman push` of `local` to `host/<dest>` (a tag); the digest podman reports.
fn podman_push(c: &crate::podman::Clients, local: &str, dest: &str) -> String {
    let digestfile = c.dir.path().join("digest");
    let _ = std::fs::remove_file(&digestfile);
    c.podman(&[
        "push",
        "--tls-verify=false",
        "--authfile",
        &c.authfile(),
        "--digestfile",
        &digestfile.display().to_string(),
        local,
        &format!("docker://{}", c.image(dest)),
    ])
    .unwrap_or_else(|e| panic!("podman push {dest}: {e}"));
    let digest = std::fs::read_to_string(&digestfile)
        .unwrap()
        .trim()
        .to_owned();
    assert!(digest.starts_with("sha256:"), "{digest}");
    digest
}

/// The manifest `digest` from `base`, checked against the digest (so it is the manifest
/// podman pushed, not merely Berth's answer).
async fn fetch_manifest(stack: &Stack, base: &str, jwt: &str, digest: &str) -> Vec<u8> {
    let r = stack
        .http
        .get(format!("{base}/manifests/{digest}"))
        .bearer_auth(jwt)
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{base} {digest}");
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(Digest::sha256(&bytes).to_string(), digest, "{base}");
    bytes
}

/// `podman push` of `local` into an OCI layout (gzip layers, as to a registry), then its
/// blobs and manifest over HTTP into `base` by digest only, untagged; the manifest bytes.
async fn push_untagged(
    stack: &Stack,
    c: &crate::podman::Clients,
    base: &str,
    jwt: &str,
    local: &str,
) -> Vec<u8> {
    let layout = c
        .dir
        .path()
        .join(format!("layout-{}", local.replace([':', '/'], "-")));
    c.podman(&[
        "push",
        "--compress",
        local,
        &format!("oci:{}:x", layout.display()),
    ])
    .unwrap_or_else(|e| panic!("podman push {local} to a layout: {e}"));
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    for d in manifest_blobs(&manifest) {
        let r = push_blob(&stack.http, base, jwt, &blob(&d)).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{d}");
    }
    let digest = Digest::sha256(&manifest).to_string();
    let r = stack
        .http
        .put(format!("{base}/manifests/{digest}"))
        .bearer_auth(jwt)
        .header("content-type", MANIFEST_TYPE)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    manifest
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
    let began = Instant::now();
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

    // Five real images built by podman FROM scratch, each a shared base layer (the same
    // first COPY) and a layer of its own.
    let c = crate::podman::Clients::new(&stack);
    c.login("root", &stack.root_token)
        .unwrap_or_else(|e| panic!("podman login: {e}"));
    let ctx = c.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("base.txt"), "shared base layer\n").unwrap();
    for own in ["one", "two", "three", "four", "five"] {
        build(&c, &ctx, &format!("localhost/gc/{own}:latest"), own);
    }
    let local = |own: &str| format!("localhost/gc/{own}:latest");
    // Three tagged images in two repositories, pushed by podman.
    let d1 = podman_push(&c, &local("one"), &format!("{one}:one"));
    let d2 = podman_push(&c, &local("two"), &format!("{one}:two"));
    let d3 = podman_push(&c, &local("three"), &format!("{two}:three"));
    let m1 = fetch_manifest(&stack, &a, &jwt, &d1).await;
    let m2 = fetch_manifest(&stack, &a, &jwt, &d2).await;
    let m3 = fetch_manifest(&stack, &b, &jwt, &d3).await;
    // An untagged manifest left behind, and one pushed by digest then deleted.
    let m4 = push_untagged(&stack, &c, &a, &jwt, &local("four")).await;
    let m5 = push_untagged(&stack, &c, &b, &jwt, &local("five")).await;
    let (d4, d5) = (
        Digest::sha256(&m4).to_string(),
        Digest::sha256(&m5).to_string(),
    );
    // The base layer is one blob, shared by all three tagged images (and the untagged ones).
    let base_layer = manifest_layers(&m1)[0].clone();
    for (m, what) in [(&m2, "two"), (&m3, "three"), (&m4, "four"), (&m5, "five")] {
        let layers = manifest_layers(m);
        assert_eq!(layers.len(), 2, "{what}: {layers:?}");
        assert_eq!(layers[0], base_layer, "{what} shares the base layer");
    }
    let pushed_at = began.elapsed();
    for (url, what) in [
        (format!("{a}/manifests/two"), "tag two"),
        (format!("{b}/manifests/{d5}"), "manifest five"),
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
    // What must stay and go, from the manifests themselves: what "one" and "three" name
    // stays; everything else the five named goes.
    let kept: BTreeSet<String> = manifest_blobs(&m1)
        .union(&manifest_blobs(&m3))
        .cloned()
        .collect();
    let all: BTreeSet<String> = [&m1, &m2, &m3, &m4, &m5]
        .iter()
        .flat_map(|m| manifest_blobs(m))
        .collect();
    // base, five configs, five own layers.
    assert_eq!(all.len(), 11, "{all:?}");
    assert_eq!(kept.len(), 5, "{kept:?}");
    let gone: BTreeSet<String> = all.difference(&kept).cloned().collect();
    let all_pushed = store_digests(stack.store_path());
    assert_eq!(all_pushed, all, "store files before GC");

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
    assert!(rows.is_disjoint(&gone));
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
        BTreeSet::from([d1.clone(), d3.clone()]),
        "manifest rows"
    );
    assert!(!ms.contains(&d2) && !ms.contains(&d4) && !ms.contains(&d5));
    assert!(queues_empty(&db).await);

    // Everything tagged pulls and verifies, over HTTP ...
    let mut pulled = BTreeSet::new();
    pulled.extend(pull_verified(&stack.http, &a, &jwt, "one").await);
    pulled.extend(pull_verified(&stack.http, &b, &jwt, "three").await);
    assert_eq!(pulled, kept);
    // ... and with podman, from empty local storage (podman verifies every blob's digest).
    c.podman(&["rmi", "-a", "-f"])
        .unwrap_or_else(|e| panic!("podman rmi: {e}"));
    for (reference, digest) in [(format!("{one}:one"), &d1), (format!("{two}:three"), &d3)] {
        let image = c.image(&reference);
        c.podman(&[
            "pull",
            "--quiet",
            "--tls-verify=false",
            "--authfile",
            &c.authfile(),
            &image,
        ])
        .unwrap_or_else(|e| panic!("podman pull {image}: {e}"));
        let got = c
            .podman(&["image", "inspect", "--format", "{{.Digest}}", &image])
            .unwrap();
        assert_eq!(got.trim(), digest, "podman pulls what it pushed: {image}");
    }
    // What went is gone from the API too.
    for (base, reference) in [
        (&a, "two"),
        (&a, d4.as_str()),
        (&a, d2.as_str()),
        (&b, d5.as_str()),
    ] {
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
    // Two manifests deleted by GC (two, four; five went through the API), six blobs (the
    // configs and own layers of two, four and five); every other review kept what it
    // looked at.
    assert_eq!(
        runs(&gc.url, &["worker=\"manifest\"", "result=\"dangling\""]).await,
        2
    );
    assert_eq!(
        runs(&gc.url, &["worker=\"blob\"", "result=\"dangling\""]).await,
        gone.len() as u64
    );
    assert_eq!(gone.len(), 6);
    assert_eq!(runs(&gc.url, &["result=\"error\""]).await, 0);
    // And the offline check finds nothing wrong (non-zero exit while a problem remains).
    let panics = berth_test_support::PanicGuard::new("berth-gc check");
    let check = std::process::Command::new(crate::support::binary("berth-gc"))
        .env_clear()
        .env(berth_test_support::panics::PANIC_FILE_ENV, panics.path())
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
    eprintln!(
        "acceptance 1: podman built and pushed in {pushed_at:?}; collected 2 manifests and \
         {} blobs {took:?} after the last write; {:?} in all",
        gone.len(),
        began.elapsed()
    );
}

mod collects_exactly_the_unreferenced {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        if !crate::podman::clients_available() {
            return;
        }
        if let Some(s) = Stack::start_with(berth_test_support::Backend::Sqlite, options("2s")).await
        {
            collects_exactly_the_unreferenced(s).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if !crate::podman::clients_available() {
            return;
        }
        if let Some(s) =
            Stack::start_with(berth_test_support::Backend::Postgres, options("2s")).await
        {
            collects_exactly_the_unreferenced(s).await;
        }
    }
}
