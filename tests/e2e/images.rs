//! Small images pushed over plain HTTP for the management-API scenarios: blobs by
//! monolithic upload, then an OCI image manifest under any number of tags.

use berth_core::Digest;
use reqwest::StatusCode;
use serde_json::json;

use crate::stack::Stack;

/// The media type of the manifests pushed here.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// `<registry>/v2/<name>`.
pub fn v2(stack: &Stack, name: &str) -> String {
    format!("{}/v2/{name}", stack.registry.url)
}

/// Upload `blob` to repository `name` (201 expected).
pub async fn push_blob(stack: &Stack, name: &str, jwt: &str, blob: &[u8]) -> Digest {
    let digest = Digest::sha256(blob);
    let r = stack
        .http
        .post(format!(
            "{}/blobs/uploads/?digest={digest}",
            v2(stack, name)
        ))
        .bearer_auth(jwt)
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    digest
}

/// Push a config seeded with `seed` and `layers`, then the manifest over them as each of
/// `tags`; returns the manifest digest.
pub async fn push_image(
    stack: &Stack,
    name: &str,
    jwt: &str,
    seed: &str,
    layers: &[&[u8]],
    tags: &[&str],
) -> String {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let config_digest = push_blob(stack, name, jwt, &config).await;
    let mut layer_refs = Vec::new();
    for layer in layers {
        layer_refs.push((push_blob(stack, name, jwt, layer).await, layer.len()));
    }
    let refs: Vec<(&Digest, usize)> = layer_refs.iter().map(|(d, n)| (d, *n)).collect();
    let manifest = crate::support::image_manifest((&config_digest, config.len()), &refs, json!({}));
    for tag in tags {
        let r = stack
            .http
            .put(format!("{}/manifests/{tag}", v2(stack, name)))
            .bearer_auth(jwt)
            .header("content-type", MANIFEST_TYPE)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }
    Digest::sha256(&manifest).to_string()
}

/// `GET /v2/<name>/manifests/<reference>`: the status and the body as JSON (`Null` if none).
pub async fn pull(
    stack: &Stack,
    name: &str,
    jwt: &str,
    reference: &str,
) -> (StatusCode, serde_json::Value) {
    let r = stack
        .http
        .get(format!("{}/manifests/{reference}", v2(stack, name)))
        .bearer_auth(jwt)
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// `/v2/<name>/tags/list`'s tags (read from the database, not cached).
pub async fn tag_list(stack: &Stack, name: &str, jwt: &str) -> serde_json::Value {
    let r = stack
        .http
        .get(format!("{}/tags/list", v2(stack, name)))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<serde_json::Value>().await.unwrap()["tags"].clone()
}
