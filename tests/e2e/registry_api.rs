//! The registry's management API (GitLab's paths) against the real services: images pushed over
//! `/v2/`, then repositories listed per project and group (with tags and counts), offset
//! and keyset pagination of tags, tag details with exact sizes and digests, a repository's
//! deduplicated size, and who may see what (viewing is the right to pull).

use berth_core::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stack::{Stack, urlencode};
use crate::stack_test;

/// Push `blobs` to `repo`, then an image manifest over `config` and `layers` as `tag`;
/// returns the manifest digest and size.
async fn push(
    stack: &Stack,
    jwt: &str,
    repo: &str,
    config: &[u8],
    layers: &[&[u8]],
    tag: &str,
) -> (Digest, usize) {
    let base = format!("{}/v2/{repo}", stack.registry.url);
    for blob in std::iter::once(config).chain(layers.iter().copied()) {
        let digest = Digest::sha256(blob);
        let r = stack
            .http
            .post(format!("{base}/blobs/uploads/?digest={digest}"))
            .bearer_auth(jwt)
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }
    let layer_digests: Vec<Digest> = layers.iter().map(|l| Digest::sha256(l)).collect();
    let layer_refs: Vec<(&Digest, usize)> = layer_digests
        .iter()
        .zip(layers)
        .map(|(d, l)| (d, l.len()))
        .collect();
    let manifest = crate::support::image_manifest(
        (&Digest::sha256(config), config.len()),
        &layer_refs,
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
    (Digest::sha256(&manifest), manifest.len())
}

/// Push an OCI index over `children` (digest, size) to `repo` as `tag`.
async fn push_index(
    stack: &Stack,
    jwt: &str,
    repo: &str,
    children: &[&(Digest, usize)],
    tag: &str,
) {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children.iter().map(|(d, size)| json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d.to_string(),
            "size": size,
        })).collect::<Vec<_>>(),
    });
    let r = stack
        .http
        .put(format!("{}/v2/{repo}/manifests/{tag}", stack.registry.url))
        .bearer_auth(jwt)
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(serde_json::to_vec(&index).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
}

/// An anonymous API GET: status, headers and JSON.
async fn anon(stack: &Stack, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = stack
        .http
        .get(format!("{}/api/v4{path}", stack.auth.url))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The URL in a `Link` header's `rel="next"` entry.
fn next_link(link: &str) -> Option<String> {
    link.split(", ")
        .find(|l| l.ends_with("rel=\"next\""))
        .and_then(|l| l.split_once('<'))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(url, _)| url.to_owned())
}

stack_test!(registry_api, |stack| {
    let group = stack.create_group("g", None).await;
    let gid = group["id"].as_i64().unwrap();
    let app = stack.create_project(gid, "app", "public", "enabled").await;
    let pid = app["id"].as_i64().unwrap();
    let secret = stack
        .create_project(gid, "secret", "private", "enabled")
        .await;
    let secret_id = secret["id"].as_i64().unwrap();
    let outsider = stack.create_user("outsider", "outsider-password-1").await;
    let outsider_pat = stack.pat(outsider, &["api"]).await;

    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[
                "repository:g/app:pull,push",
                "repository:g/app/worker:pull,push",
                "repository:g/secret:pull,push",
            ],
        )
        .await;
    let config1 = br#"{"architecture":"amd64","os":"linux","v":1}"#.to_vec();
    let config2 = br#"{"architecture":"arm64","os":"linux","v":2}"#.to_vec();
    let config3 = br#"{"architecture":"amd64","os":"linux","v":3}"#.to_vec();
    let layer_a = vec![b'a'; 100];
    let layer_b = vec![b'b'; 50];
    let layer_c = vec![b'c'; 7];
    let v1 = push(&stack, &jwt, "g/app", &config1, &[&layer_a], "v1").await;
    let v2 = push(&stack, &jwt, "g/app", &config2, &[&layer_a, &layer_b], "v2").await;
    let w1 = push(
        &stack,
        &jwt,
        "g/app/worker",
        &config3,
        &[&layer_c],
        "latest",
    )
    .await;
    let w2 = push(
        &stack,
        &jwt,
        "g/app/worker",
        &config1,
        &[&layer_c, &layer_a],
        "other",
    )
    .await;
    push(&stack, &jwt, "g/secret", &config3, &[&layer_c], "latest").await;
    let host = stack.registry_host();

    // The project's repositories, anonymously (public project, registry enabled).
    let (status, _, list) = anon(
        &stack,
        &format!(
            "/projects/{}/registry/repositories?tags=true&tags_count=true",
            urlencode("g/app")
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let root_repo = &items[0];
    assert_eq!(root_repo["name"], "");
    assert_eq!(root_repo["path"], "g/app");
    assert_eq!(root_repo["project_id"], pid);
    assert_eq!(root_repo["location"], format!("{host}/g/app"));
    assert_eq!(root_repo["status"], Value::Null);
    assert_eq!(root_repo["cleanup_policy_started_at"], Value::Null);
    assert_eq!(root_repo["created_at"].as_str().unwrap().len(), 24);
    assert_eq!(root_repo["tags_count"], 2);
    assert_eq!(
        root_repo["tags"],
        json!([
            {"name": "v1", "path": "g/app:v1", "location": format!("{host}/g/app:v1")},
            {"name": "v2", "path": "g/app:v2", "location": format!("{host}/g/app:v2")},
        ])
    );
    assert_eq!(items[1]["name"], "worker");
    assert_eq!(items[1]["path"], "g/app/worker");
    assert_eq!(items[1]["tags_count"], 2);
    let repo_id = root_repo["id"].as_i64().unwrap();
    let worker_id = items[1]["id"].as_i64().unwrap();

    // Without the flags there are no tags or counts.
    let plain = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    assert!(plain[0].get("tags").is_none() && plain[0].get("tags_count").is_none());

    // Offset pagination headers.
    let (_, h, page) = anon(
        &stack,
        &format!("/projects/{pid}/registry/repositories?per_page=1"),
    )
    .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(header(&h, "x-total"), "2");
    assert_eq!(header(&h, "x-total-pages"), "2");
    assert_eq!(header(&h, "x-next-page"), "2");
    assert_eq!(header(&h, "x-per-page"), "1");
    assert!(header(&h, "link").contains("page=2&per_page=1>; rel=\"next\""));

    // Tags, offset.
    let tags_path = format!("/projects/{pid}/registry/repositories/{repo_id}/tags");
    let (status, h, tags) = anon(&stack, &format!("{tags_path}?per_page=1&page=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        tags,
        json!([{"name": "v2", "path": "g/app:v2", "location": format!("{host}/g/app:v2")}])
    );
    assert_eq!(header(&h, "x-total"), "2");
    assert_eq!(header(&h, "x-prev-page"), "1");

    // Tags, keyset: a next link while there is more, none on the last page.
    let (_, h, first) = anon(&stack, &format!("{tags_path}?pagination=keyset&per_page=1")).await;
    assert_eq!(first[0]["name"], "v1");
    assert!(h.get("x-total").is_none());
    let next = next_link(&header(&h, "link")).expect("next link");
    assert!(next.contains("last=v1"), "{next}");
    let r = stack.http.get(&next).send().await.unwrap();
    assert!(r.headers().get("link").is_none());
    let second: Value = r.json().await.unwrap();
    assert_eq!(second[0]["name"], "v2");
    let (_, _, desc) = anon(
        &stack,
        &format!("{tags_path}?pagination=keyset&per_page=5&sort=desc"),
    )
    .await;
    assert_eq!(desc[0]["name"], "v2");
    assert_eq!(desc[1]["name"], "v1");

    // Tag details.
    let (status, _, detail) = anon(&stack, &format!("{tags_path}/v1")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let hex1 = Digest::sha256(&config1).to_string()["sha256:".len()..].to_owned();
    assert_eq!(detail["name"], "v1");
    assert_eq!(detail["path"], "g/app:v1");
    assert_eq!(detail["location"], format!("{host}/g/app:v1"));
    assert_eq!(detail["revision"], hex1);
    assert_eq!(detail["short_revision"], hex1[..9]);
    assert_eq!(detail["digest"], v1.0.to_string());
    assert_eq!(detail["total_size"], config1.len() + 100);
    let created = detail["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let (_, _, detail2) = anon(&stack, &format!("{tags_path}/v2")).await;
    assert_eq!(detail2["digest"], v2.0.to_string());
    assert_eq!(detail2["total_size"], config2.len() + 150);
    let (status, _, missing) = anon(&stack, &format!("{tags_path}/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], "404 Tag Not Found");

    // An index: no config of its own, the distinct blobs of its children.
    push_index(&stack, &jwt, "g/app/worker", &[&w1, &w2], "multi").await;
    let (status, _, multi) = anon(
        &stack,
        &format!("/projects/{pid}/registry/repositories/{worker_id}/tags/multi"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{multi}");
    assert_eq!(multi["revision"], Value::Null);
    assert_eq!(multi["total_size"], config3.len() + config1.len() + 7 + 100);

    // One repository with its deduplicated size (layer a counted once).
    let (status, _, one) = anon(
        &stack,
        &format!("/registry/repositories/{repo_id}?size=true&tags_count=true"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["path"], "g/app");
    assert_eq!(one["tags_count"], 2);
    assert_eq!(one["size"], config1.len() + config2.len() + 150);
    let (_, _, worker) = anon(
        &stack,
        &format!("/registry/repositories/{worker_id}?size=1"),
    )
    .await;
    assert_eq!(worker["size"], config3.len() + config1.len() + 7 + 100);

    // The group: every project's repositories the caller may see.
    let paths = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, _, anon_group) = anon(&stack, "/groups/g/registry/repositories").await;
    assert_eq!(status, StatusCode::OK, "{anon_group}");
    assert_eq!(paths(&anon_group), ["g/app", "g/app/worker"]);
    let root_group = stack
        .ok(
            Method::GET,
            &format!("/groups/{gid}/registry/repositories?tags_count=true"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(paths(&root_group), ["g/app", "g/app/worker", "g/secret"]);
    assert_eq!(root_group[2]["project_id"], secret_id);
    assert_eq!(root_group[2]["name"], "");
    let outsider_group = stack
        .ok(
            Method::GET,
            "/groups/g/registry/repositories",
            &outsider_pat,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(paths(&outsider_group), ["g/app", "g/app/worker"]);

    // A private project is hidden from a non-member and from anonymous callers.
    let secret_repo = root_group[2]["id"].as_i64().unwrap();
    for path in [
        format!("/projects/{secret_id}/registry/repositories"),
        format!("/registry/repositories/{secret_repo}"),
        format!("/projects/{secret_id}/registry/repositories/{secret_repo}/tags"),
        format!("/projects/{secret_id}/registry/repositories/{secret_repo}/tags/latest"),
    ] {
        let (status, body) = stack.call(Method::GET, &path, &outsider_pat, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        let (status, _, _) = anon(&stack, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    stack
        .ok(
            Method::GET,
            &format!("/projects/{secret_id}/registry/repositories/{secret_repo}/tags/latest"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;

    // A repository id must belong to the project in the URL.
    let (status, body) = stack
        .call(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories/{secret_repo}/tags"),
            &stack.root_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "404 Repository Not Found");
});
