//! Storage limits: a tagging push that would take a root namespace's or a
//! project's deduplicated usage over its limit is refused with 403 `QUOTA_EXCEEDED`, naming
//! the usage and the limit; images that share layers count them once; what is stored stays
//! pullable; deleting tags frees room; the API's usage figures are the sum of the unique
//! blob sizes; `podman push` shows the message; racing pushes never overshoot.

use berth_core::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::podman::{Clients, clients_available};
use crate::stack::Stack;
use crate::stack_test;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image: its config and layer bytes.
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
}

impl Image {
    /// A config naming `seed` and a `layer_size`-byte layer filled with `fill`.
    fn new(seed: &str, fill: u8, layer_size: usize) -> Image {
        Image {
            config: format!("{{\"seed\":\"{seed}\"}}").into_bytes(),
            layer: vec![fill; layer_size],
        }
    }

    fn manifest(&self) -> Vec<u8> {
        crate::support::image_manifest(
            (&Digest::sha256(&self.config), self.config.len()),
            &[(&Digest::sha256(&self.layer), self.layer.len())],
            json!({}),
        )
    }

    fn bytes(&self) -> i64 {
        (self.config.len() + self.layer.len()) as i64
    }
}

/// Upload the image's blobs to `base` (`…/v2/<name>`), then `PUT` its manifest as `tag`;
/// the manifest PUT's status and JSON body.
async fn push(
    stack: &Stack,
    base: &str,
    jwt: &str,
    image: &Image,
    tag: &str,
) -> (StatusCode, Value) {
    for blob in [&image.config, &image.layer] {
        let r = stack
            .http
            .post(format!(
                "{base}/blobs/uploads/?digest={}",
                Digest::sha256(blob)
            ))
            .bearer_auth(jwt)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = stack
        .http
        .put(format!("{base}/manifests/{tag}"))
        .bearer_auth(jwt)
        .header("content-type", MANIFEST_TYPE)
        .body(image.manifest())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The only error of an OCI error body: `(code, message)`.
fn error(body: &Value) -> (String, String) {
    let e = &body["errors"][0];
    (
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A registry token for root on `names` with `actions`.
async fn jwt(stack: &Stack, names: &[&str], actions: &str) -> String {
    let scopes: Vec<String> = names
        .iter()
        .map(|n| format!("repository:{n}:{actions}"))
        .collect();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    stack
        .registry_token(Some(("root", &stack.root_token)), &scopes)
        .await
}

/// `root_storage_statistics.container_registry_size` of group `gid`.
async fn group_usage(stack: &Stack, gid: i64) -> i64 {
    let g = stack
        .ok(
            Method::GET,
            &format!("/groups/{gid}"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    g["root_storage_statistics"]["container_registry_size"]
        .as_i64()
        .unwrap_or_else(|| panic!("no root_storage_statistics in {g}"))
}

/// `statistics.container_registry_size` of project `pid`.
async fn project_usage(stack: &Stack, pid: i64) -> i64 {
    let p = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}?statistics=true"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    p["statistics"]["container_registry_size"]
        .as_i64()
        .unwrap_or_else(|| panic!("no statistics in {p}"))
}

async fn set_group_limit(stack: &Stack, gid: i64, limit: Value) -> Value {
    stack
        .ok(
            Method::PUT,
            &format!("/groups/{gid}"),
            &stack.root_token,
            Some(json!({ "registry_storage_limit": limit })),
            StatusCode::OK,
        )
        .await
}

stack_test!(quota_refuses_dedups_and_frees, |stack| {
    let group = stack.create_group("qa", None).await;
    let gid = group["id"].as_i64().unwrap();
    let project = stack.create_project(gid, "app", "private", "enabled").await;
    let pid = project["id"].as_i64().unwrap();
    let name = "qa/app";
    let token = jwt(&stack, &[name], "pull,push,delete").await;
    let base = format!("{}/v2/{name}", stack.registry.url);

    let first = Image::new("first", b'a', 4000);
    let second = Image::new("second", b'b', 4000);
    // Shares the first image's layer; only its small config is new.
    let sibling = Image {
        config: b"{\"seed\":\"sibling\"}".to_vec(),
        layer: first.layer.clone(),
    };
    let limit = first.bytes() + 100;
    let v = set_group_limit(&stack, gid, json!(limit)).await;
    assert_eq!(v["registry_storage_limit"], json!(limit));
    assert_eq!(v["root_storage_statistics"]["container_registry_size"], 0);

    assert_eq!(
        push(&stack, &base, &token, &first, "first").await.0,
        StatusCode::CREATED
    );
    assert_eq!(group_usage(&stack, gid).await, first.bytes());

    // Distinct layers: over the limit, refused with the figures.
    let (status, body) = push(&stack, &base, &token, &second, "second").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (code, message) = error(&body);
    assert_eq!(code, "QUOTA_EXCEEDED");
    let would = first.bytes() + second.bytes();
    assert!(message.contains("namespace qa"), "{message}");
    assert!(
        message.contains(&format!("{would} of {limit} bytes")),
        "{message}"
    );
    assert_eq!(body["errors"][0]["detail"]["usage_bytes"], json!(would));
    assert_eq!(body["errors"][0]["detail"]["limit_bytes"], json!(limit));
    // Nothing of the refused push is tagged; usage is unchanged.
    let r = stack
        .http
        .get(format!("{base}/manifests/second"))
        .bearer_auth(&token)
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(group_usage(&stack, gid).await, first.bytes());

    // Dedup: an image sharing all layers fits; so does another tag on the first image.
    assert_eq!(
        push(&stack, &base, &token, &sibling, "sibling").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        push(&stack, &base, &token, &first, "first-again").await.0,
        StatusCode::CREATED
    );
    let expected = first.bytes() + sibling.config.len() as i64;
    assert_eq!(group_usage(&stack, gid).await, expected);
    assert_eq!(project_usage(&stack, pid).await, expected);
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    let repo_id = repos[0]["id"].as_i64().unwrap();
    let repo = stack
        .ok(
            Method::GET,
            &format!("/registry/repositories/{repo_id}?size=true"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(repo["size"], json!(expected));

    // The first image is still whole.
    let r = stack
        .http
        .get(format!("{base}/manifests/first"))
        .bearer_auth(&token)
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = stack
        .http
        .get(format!("{base}/blobs/{}", Digest::sha256(&first.layer)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), first.layer.len());

    // Free the room: one tag through the API, the others through /v2/.
    stack
        .ok(
            Method::DELETE,
            &format!("/projects/{pid}/registry/repositories/{repo_id}/tags/first"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    for tag in ["first-again", "sibling"] {
        let r = stack
            .http
            .delete(format!("{base}/manifests/{tag}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{tag}");
    }
    assert_eq!(group_usage(&stack, gid).await, 0);
    assert_eq!(
        push(&stack, &base, &token, &second, "second").await.0,
        StatusCode::CREATED
    );
    assert_eq!(group_usage(&stack, gid).await, second.bytes());

    // A project limit applies on its own and names the project.
    let v = stack
        .ok(
            Method::PUT,
            &format!("/projects/{pid}"),
            &stack.root_token,
            Some(json!({ "registry_storage_limit": second.bytes() })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["registry_storage_limit"], json!(second.bytes()));
    set_group_limit(&stack, gid, Value::Null).await;
    let third = Image::new("third", b'c', 10);
    let (status, body) = push(&stack, &base, &token, &third, "third").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (code, message) = error(&body);
    assert_eq!(code, "QUOTA_EXCEEDED");
    assert!(message.contains("project qa/app"), "{message}");
    // Retagging what is already counted adds nothing and passes even at the limit.
    assert_eq!(
        push(&stack, &base, &token, &second, "second-copy").await.0,
        StatusCode::CREATED
    );
    // An untagged push (by digest) does not count.
    let (status, _) = push(
        &stack,
        &base,
        &token,
        &third,
        &Digest::sha256(&third.manifest()).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let v = stack
        .ok(
            Method::PUT,
            &format!("/projects/{pid}"),
            &stack.root_token,
            Some(json!({ "registry_storage_limit": null })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["registry_storage_limit"], Value::Null);
    assert_eq!(
        push(&stack, &base, &token, &third, "third").await.0,
        StatusCode::CREATED
    );

    // Only admins set limits, only on top-level groups.
    let user = stack.create_user("owner", "owner-password-123").await;
    stack.add_member("groups", gid, user, 50).await;
    let owner_pat = stack.pat(user, &["api"]).await;
    let (status, _) = stack
        .call(
            Method::PUT,
            &format!("/projects/{pid}"),
            &owner_pat,
            Some(json!({ "registry_storage_limit": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let sub = stack.create_group("sub", Some(gid)).await;
    let (status, _) = stack
        .call(
            Method::PUT,
            &format!("/groups/{}", sub["id"]),
            &stack.root_token,
            Some(json!({ "registry_storage_limit": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = stack
        .call(
            Method::PUT,
            &format!("/groups/{gid}"),
            &stack.root_token,
            Some(json!({ "registry_storage_limit": -1 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});

stack_test!(quota_racing_pushes_never_overshoot, |stack| {
    let group = stack.create_group("race", None).await;
    let gid = group["id"].as_i64().unwrap();
    let mut names = Vec::new();
    for p in ["one", "two"] {
        stack.create_project(gid, p, "private", "enabled").await;
        names.push(format!("race/{p}"));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let token = jwt(&stack, &refs, "pull,push").await;
    const N: usize = 8;
    let images: Vec<Image> = (0..N)
        .map(|i| Image::new(&format!("img-{i:02}"), b'0' + i as u8, 1000))
        .collect();
    let size = images[0].bytes();
    assert!(images.iter().all(|i| i.bytes() == size));
    let limit = 3 * size + size / 2;
    set_group_limit(&stack, gid, json!(limit)).await;

    let pushes = images.iter().enumerate().map(|(i, image)| {
        let base = format!("{}/v2/{}", stack.registry.url, names[i % 2]);
        let (stack, token) = (&stack, &token);
        async move { push(stack, &base, token, image, &format!("t{i}")).await }
    });
    let results = futures_util::future::join_all(pushes).await;
    let accepted = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    for (status, body) in &results {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(error(body).0, "QUOTA_EXCEEDED");
        }
    }
    // Manifest-level checks under the root namespace's lock: exactly as many as fit.
    assert_eq!(accepted, 3, "{results:?}");
    let usage = group_usage(&stack, gid).await;
    assert_eq!(usage, 3 * size);
    assert!(usage <= limit);
});

stack_test!(quota_podman_push_shows_the_message, |stack| {
    if !clients_available() {
        return;
    }
    let group = stack.create_group("pq", None).await;
    let gid = group["id"].as_i64().unwrap();
    stack.create_project(gid, "app", "private", "enabled").await;
    set_group_limit(&stack, gid, json!(1000)).await;
    let clients = Clients::new(&stack);
    clients
        .login("root", &stack.root_token)
        .expect("podman login");
    let ctx = clients.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY big.bin /big.bin\n",
    )
    .unwrap();
    let big: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(ctx.join("big.bin"), big).unwrap();
    let image = clients.image("pq/app:big");
    clients
        .podman(&["build", "--quiet", "-t", &image, &ctx.display().to_string()])
        .expect("podman build");
    let err = clients
        .podman(&[
            "push",
            "--tls-verify=false",
            "--authfile",
            &clients.authfile(),
            &image,
        ])
        .expect_err("the push must be refused");
    assert!(
        err.contains("storage limit exceeded for namespace pq"),
        "{err}"
    );
    assert!(err.contains("of 1000 bytes"), "{err}");
    assert_eq!(group_usage(&stack, gid).await, 0);
});
