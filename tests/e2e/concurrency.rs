//! Concurrent pushes through two registry processes sharing one database and store: every
//! push lands (write conflicts between the processes are retried, not surfaced).

use berth_core::Digest;
use reqwest::StatusCode;
use serde_json::json;

use crate::both;
use crate::support::*;

const NAME: &str = "acme/platform/api";

async fn push_via(http: &reqwest::Client, base: &str, token: &str, tag: &str) -> StatusCode {
    let config = format!("{{\"tag\":\"{tag}\"}}");
    let layer = format!("layer of {tag}");
    for data in [config.as_bytes(), layer.as_bytes()] {
        let d = Digest::sha256(data);
        let r = http
            .post(format!("{base}/v2/{NAME}/blobs/uploads/?digest={d}"))
            .bearer_auth(token)
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::CREATED {
            return r.status();
        }
    }
    let c = Digest::sha256(config.as_bytes());
    let l = Digest::sha256(layer.as_bytes());
    let m = image_manifest((&c, config.len()), &[(&l, layer.len())], json!({}));
    http.put(format!("{base}/v2/{NAME}/manifests/{tag}"))
        .bearer_auth(token)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m)
        .send()
        .await
        .unwrap()
        .status()
}

both!(two_processes_push_concurrently, |env| {
    let second = env.spawn_registry(&[]).await;
    let token = env.token(NAME, &["pull", "push"]);
    let mut tasks = Vec::new();
    for (p, base) in [env.url().to_owned(), second.url.clone()]
        .into_iter()
        .enumerate()
    {
        for worker in 0..4 {
            let (http, base, token) = (env.http.clone(), base.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                for i in 0..8 {
                    let tag = format!("p{p}-w{worker}-{i}");
                    let status = push_via(&http, &base, &token, &tag).await;
                    if status != StatusCode::CREATED {
                        failures.push((tag, status));
                    }
                }
                failures
            }));
        }
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(failures.is_empty(), "failed pushes: {failures:?}");
    let v: serde_json::Value = env
        .http
        .get(format!("{}/v2/{NAME}/tags/list", second.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["tags"].as_array().unwrap().len(), 2 * 4 * 8);
});
