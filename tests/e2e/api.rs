//! The `/v2/` API over HTTP on both databases: push and pull, errors in the spec's form,
//! pagination, referrers, deletion, mounting and the project naming rule.

use berth_core::{Algorithm, Digest};
use reqwest::StatusCode;
use serde_json::json;

use crate::both;
use crate::support::*;

const NAME: &str = "acme/platform/api";

both!(push_pull_round_trip, |env| {
    let digest = push_image(&env, NAME, "v1", "a").await;
    let token = env.token(NAME, &["pull"]);
    let mut manifest_len = 0;
    for reference in ["v1".to_string(), digest.to_string()] {
        let r = env
            .get(&format!("/v2/{NAME}/manifests/{reference}"), &token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["x-request-id"].len(),
            36,
            "a request id is echoed"
        );
        assert_eq!(
            r.headers()["docker-content-digest"],
            digest.to_string().as_str()
        );
        assert_eq!(
            r.headers()["content-type"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let body = r.bytes().await.unwrap();
        assert_eq!(Digest::sha256(&body), digest, "exact bytes served back");
        manifest_len = body.len();
    }
    let head = env
        .head(&format!("/v2/{NAME}/manifests/v1"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        manifest_len.to_string().as_str(),
        "HEAD announces the manifest's length"
    );
    assert_eq!(
        head.headers()["docker-content-digest"],
        digest.to_string().as_str()
    );
    // Blob GET, HEAD and a range.
    let blob = push_blob(&env, NAME, b"0123456789").await;
    let r = env
        .get(&format!("/v2/{NAME}/blobs/{blob}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"0123456789");
    let r = env
        .get(&format!("/v2/{NAME}/blobs/{blob}"), &token)
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"234");
    // Not linked to another repository: not served there, even though the bytes exist.
    let other = "acme/other/app";
    let r = env
        .head(
            &format!("/v2/{other}/blobs/{blob}"),
            env.token(other, &["pull"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
});

both!(chunked_upload_and_sha512, |env| {
    let token = env.token(NAME, &["pull", "push"]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let r = env
        .post(&format!("/v2/{NAME}/blobs/uploads/"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-0");
    let mut location = r.headers()["location"].to_str().unwrap().to_owned();
    for (i, chunk) in data.chunks(100_000).enumerate() {
        let start = i * 100_000;
        let r = env
            .patch(&location, &token)
            .header(
                "content-range",
                format!("{start}-{}", start + chunk.len() - 1),
            )
            .header("content-type", "application/octet-stream")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(
            r.headers()["range"],
            format!("0-{}", start + chunk.len() - 1).as_str()
        );
        location = r.headers()["location"].to_str().unwrap().to_owned();
    }
    let digest = Digest::compute(Algorithm::Sha512, &data);
    let r = env
        .put(&format!("{location}?digest={digest}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = env
        .get(&format!("/v2/{NAME}/blobs/{digest}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);
});

both!(session_closed_with_whole_body_and_empty_blob, |env| {
    let token = env.token(NAME, &["pull", "push"]);
    let start = || async {
        let r = env
            .post(&format!("/v2/{NAME}/blobs/uploads/"), &token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        r.headers()["location"].to_str().unwrap().to_owned()
    };
    // POST, then PUT carrying the whole blob (what many clients do for small blobs).
    let data = b"a small config blob".to_vec();
    let digest = Digest::sha256(&data);
    let location = start().await;
    let r = env
        .put(&format!("{location}?digest={digest}"), &token)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let got = env
        .get(&format!("/v2/{NAME}/blobs/{digest}"), &token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    let r = env.get(&location, &token).send().await.unwrap();
    assert_eq!(
        error_code(r).await,
        "BLOB_UPLOAD_UNKNOWN",
        "the session is closed"
    );
    // A zero-byte blob: no byte ever reaches the store before the closing PUT.
    let empty = Digest::sha256(b"");
    let location = start().await;
    let r = env
        .put(&format!("{location}?digest={empty}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = env
        .head(&format!("/v2/{NAME}/blobs/{empty}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "0");
    // A wrong digest on the closing PUT: refused, the session is gone, nothing is stored.
    let location = start().await;
    let wrong = Digest::sha256(b"not the body");
    let r = env
        .put(&format!("{location}?digest={wrong}"), &token)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = env.get(&location, &token).send().await.unwrap();
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    let r = env
        .head(&format!("/v2/{NAME}/blobs/{wrong}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        std::fs::read_dir(env.store.path().join("uploads"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "no upload file left"
    );
});

both!(upload_errors, |env| {
    let token = env.token(NAME, &["pull", "push", "delete"]);
    // Digest mismatch on a monolithic upload: DIGEST_INVALID, nothing kept.
    let wrong = Digest::sha256(b"something else");
    let r = env
        .http
        .post(format!(
            "{}/v2/{NAME}/blobs/uploads/?digest={wrong}",
            env.url()
        ))
        .bearer_auth(&token)
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = env
        .head(&format!("/v2/{NAME}/blobs/{wrong}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        std::fs::read_dir(env.store.path().join("uploads"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "no upload left behind"
    );
    // A malformed digest.
    let r = env
        .http
        .post(format!(
            "{}/v2/{NAME}/blobs/uploads/?digest=sha256:nothex",
            env.url()
        ))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    // Session errors: malformed and out-of-order Content-Range.
    let r = env
        .post(&format!("/v2/{NAME}/blobs/uploads/"), &token)
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = env
        .patch(&location, &token)
        .header("content-range", "garbage")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
    let r = env
        .patch(&location, &token)
        .header("content-range", "5-7")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Content-Length disagreeing with Content-Range.
    let r = env
        .patch(&location, &token)
        .header("content-range", "0-9")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    // The session is still at 0 and can be cancelled.
    let r = env.get(&location, &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-0");
    let r = env.delete(&location, &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = env.get(&location, &token).send().await.unwrap();
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    // Unknown blob and repository.
    let r = env
        .http
        .get(format!(
            "{}/v2/{NAME}/blobs/{}",
            env.url(),
            Digest::sha256(b"nope")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    let r = env
        .get(
            "/v2/acme/platform/none/tags/list",
            env.token("acme/platform/none", &["pull"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
});

both!(manifest_errors, |env| {
    let c = push_blob(&env, NAME, b"{}").await;
    let missing = Digest::sha256(b"never pushed");
    let m = image_manifest((&c, 2), &[(&missing, 12)], json!({}));
    let r = put_manifest(&env, NAME, "v1", &m).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    let r = put_manifest(&env, NAME, "v1", b"{not json").await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // A malformed tag names nothing: reading it is unknown, pushing under it invalid.
    let r = env
        .get(
            &format!("/v2/{NAME}/manifests/.INVALID_MANIFEST_NAME"),
            env.token(NAME, &["pull"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    let r = put_manifest(&env, NAME, ".bad", b"{}").await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = put_manifest(&env, NAME, "v1", &big).await;
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    let good = image_manifest((&c, 2), &[], json!({}));
    let r = put_manifest(&env, NAME, &Digest::sha256(b"other").to_string(), &good).await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = put_manifest(&env, NAME, "-bad-tag", &good).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Nothing of the failed pushes is visible.
    let r = env
        .get(&format!("/v2/{NAME}/tags/list"), env.token(NAME, &["pull"]))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], json!([]));
    let r = env
        .get(
            &format!("/v2/{NAME}/manifests/v1"),
            env.token(NAME, &["pull"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
});

both!(unsupported_method, |env| {
    let token = env.token(NAME, &["pull", "push"]);
    let r = env
        .post(&format!("/v2/{NAME}/manifests/v1"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
    let r = env
        .get(&format!("/v2/{NAME}/nothing/here"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
});

both!(naming_rule, |env| {
    // Outside any project, or more than two segments below one: NAME_INVALID on push.
    for name in ["nobody/app", "acme/platform/a/b/c"] {
        let r = env
            .post(
                &format!("/v2/{name}/blobs/uploads/"),
                env.token(name, &["pull", "push"]),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(error_code(r).await, "NAME_INVALID");
    }
    let r = env
        .get("/v2/Acme/x/tags/list", env.token("Acme/x", &["pull"]))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "NAME_INVALID");
    let long = format!("acme/platform/{}", "a".repeat(250));
    let r = env
        .get(
            &format!("/v2/{long}/tags/list"),
            env.token(&long, &["pull"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "NAME_INVALID");
    // Two segments below the project are fine.
    push_image(&env, "acme/platform/api/tools", "v1", "t").await;
});

both!(naming_rule_backed_by_the_project_table, |env| {
    use berth_db::entity::{namespaces, projects};
    use sea_orm::{ActiveModelTrait, Set};
    // Without a configured list the registry asks the database's projects (berth-auth's).
    let registry = env.spawn_registry(&[("BERTH_REGISTRY_PROJECTS", "")]).await;
    let db = berth_db::connect(&env.db.url).await.unwrap();
    let now = chrono::Utc::now();
    let group = namespaces::ActiveModel {
        parent_id: Set(None),
        path: Set("team".into()),
        full_path: Set("team".into()),
        name: Set("Team".into()),
        kind: Set("group".into()),
        owner_user_id: Set(None),
        visibility: Set("private".into()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&db.write)
    .await
    .unwrap();
    let svc = projects::ActiveModel {
        namespace_id: Set(group.id),
        path: Set("svc".into()),
        full_path: Set("team/svc".into()),
        name: Set("Svc".into()),
        visibility: Set("private".into()),
        container_registry_access_level: Set("enabled".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&db.write)
    .await
    .unwrap();
    // Where projects have ids, a grant names the project it was issued for (as berth-auth's
    // do); a name no project owns has none to name.
    for (name, project_id, want) in [
        ("team/svc/api", Some(svc.id), StatusCode::ACCEPTED),
        ("team/other/api", None, StatusCode::BAD_REQUEST),
    ] {
        let token = env.keys.token_for(vec![berth_token::Access {
            meta: project_id.map(|id| berth_token::AccessMeta {
                project_id: Some(id),
                ..Default::default()
            }),
            ..berth_token::Access::repository(name, &["pull", "push"])
        }]);
        let r = env
            .http
            .post(format!("{}/v2/{name}/blobs/uploads/", registry.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{name}");
    }
});

both!(tags_and_catalog_paginate, |env| {
    for tag in ["a", "b", "c", "d", "e"] {
        push_image(&env, NAME, tag, "same").await;
    }
    push_image(&env, "acme/platform/web", "v1", "w").await;
    let token = env.token(NAME, &["pull"]);
    let r = env
        .get(&format!("/v2/{NAME}/tags/list?n=2"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["link"],
        format!("</v2/{NAME}/tags/list?n=2&last=b>; rel=\"next\"").as_str()
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v, json!({"name": NAME, "tags": ["a", "b"]}));
    let r = env
        .get(&format!("/v2/{NAME}/tags/list?n=2&last=d"), &token)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], json!(["e"]));
    // Catalog needs registry:catalog:*.
    let r = env.get("/v2/_catalog", &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"registry:catalog:*\"")
    );
    let admin = env.keys.token_for(vec![berth_token::Access {
        kind: "registry".into(),
        name: "catalog".into(),
        actions: vec!["*".into()],
        meta: None,
    }]);
    let r = env.get("/v2/_catalog?n=1", &admin).send().await.unwrap();
    assert_eq!(
        r.headers()["link"],
        "</v2/_catalog?n=1&last=acme%2Fplatform%2Fapi>; rel=\"next\""
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], json!([NAME]));
    let r = env
        .get(&format!("/v2/_catalog?n=5&last={NAME}"), &admin)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], json!(["acme/platform/web"]));
});

both!(referrers, |env| {
    let subject = push_image(&env, NAME, "v1", "s").await;
    let empty = push_blob(&env, NAME, b"{}").await;
    let sbom = push_blob(&env, NAME, b"sbom-bytes").await;
    let sig = push_blob(&env, NAME, b"sig-bytes").await;
    let mut pushed = Vec::new();
    for (artifact_type, layer, size) in [
        ("application/spdx+json", &sbom, 10),
        ("application/vnd.dev.sigstore", &sig, 9),
    ] {
        let m = image_manifest(
            (&empty, 2),
            &[(layer, size)],
            json!({
                "artifactType": artifact_type,
                "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": 1},
                "annotations": {"org.example": "yes"},
            }),
        );
        let digest = Digest::sha256(&m);
        let r = put_manifest(&env, NAME, &digest.to_string(), &m).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["oci-subject"], subject.to_string().as_str());
        pushed.push(digest);
    }
    let token = env.token(NAME, &["pull"]);
    let r = env
        .get(&format!("/v2/{NAME}/referrers/{subject}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    let listed: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        pushed
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(v["manifests"][0]["annotations"]["org.example"], "yes");
    let r = env
        .http
        .get(format!(
            "{}/v2/{NAME}/referrers/{subject}?artifactType=application%2Fvnd.dev.sigstore",
            env.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.dev.sigstore"
    );
    // No referrers: an empty index, not a 404.
    let r = env
        .http
        .get(format!(
            "{}/v2/{NAME}/referrers/{}",
            env.url(),
            Digest::sha256(b"x")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
});

both!(content_management, |env| {
    let d1 = push_image(&env, NAME, "v1", "one").await;
    push_image(&env, NAME, "v2", "two").await;
    let token = env.token(NAME, &["pull", "delete"]);
    // Pull-only tokens cannot delete.
    let r = env
        .delete(
            &format!("/v2/{NAME}/manifests/v2"),
            env.token(NAME, &["pull", "push"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Tag deletion keeps the manifest.
    let r = env
        .delete(&format!("/v2/{NAME}/manifests/v2"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Manifest deletion by digest removes its tags.
    let r = env
        .delete(&format!("/v2/{NAME}/manifests/{d1}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = env
        .get(&format!("/v2/{NAME}/manifests/v1"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    let r = env
        .delete(&format!("/v2/{NAME}/manifests/{d1}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    // Blob deletion unlinks it from the repository.
    let b = push_blob(&env, NAME, b"to delete").await;
    let r = env
        .delete(&format!("/v2/{NAME}/blobs/{b}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = env
        .head(&format!("/v2/{NAME}/blobs/{b}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: serde_json::Value = env
        .get(&format!("/v2/{NAME}/tags/list"), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["tags"], json!([]));
});

both!(cross_repository_mount, |env| {
    let blob = push_blob(&env, NAME, b"shared layer").await;
    let target = "acme/platform/api/worker";
    // With pull on the source: mounted (201) without sending bytes.
    let token = env.keys.token_for(vec![
        berth_token::Access::repository(target, &["pull", "push"]),
        berth_token::Access::repository(NAME, &["pull"]),
    ]);
    let r = env
        .http
        .post(format!(
            "{}/v2/{target}/blobs/uploads/?mount={blob}&from={NAME}",
            env.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["location"],
        format!("/v2/{target}/blobs/{blob}").as_str()
    );
    // Without pull on the source: an ordinary upload session, nothing linked.
    let third = "acme/other/app";
    let token = env.token(third, &["pull", "push"]);
    let r = env
        .http
        .post(format!(
            "{}/v2/{third}/blobs/uploads/?mount={blob}&from={NAME}",
            env.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = env
        .head(&format!("/v2/{third}/blobs/{blob}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
});
