//! Hostile numbers and types get clean 4xx answers or empty pages, never a panic or a 500:
//! a page number at the edge of 64 bits on every paginated API listing (GitLab answers an
//! empty page past the last one), `n` on the registry's tag and repository listings, a
//! `Content-Range` whose end would overflow, and API fields of the wrong JSON type. The
//! stack's panic guard fails these tests, too, if any process panicked on the way.

use berth_core::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stack::Stack;
use crate::support::{error_code, push_image};
use crate::{both, stack_test};

/// The largest page a client can send as a 64-bit integer.
const HUGE_PAGE: &str = "9223372036854775807";

/// A group `ib`, a project `ib/app` with one pushed image `ib/app:v1`, a member, a deploy
/// token, a project access token and an allowlist entry, so every listing has rows and
/// every placeholder a real value: (group id, project id, repository id, manifest digest).
async fn fixture(stack: &Stack) -> (i64, i64, i64, Digest) {
    let root = &stack.root_token;
    let group = stack.create_group("ib", None).await["id"].as_i64().unwrap();
    let project = stack
        .create_project(group, "app", "public", "enabled")
        .await["id"]
        .as_i64()
        .unwrap();
    let other = stack
        .create_project(group, "other", "public", "enabled")
        .await["id"]
        .as_i64()
        .unwrap();
    let user = stack.create_user("ib-dev", "ib-dev-password-1").await;
    stack.add_member("projects", project, user, 30).await;
    stack
        .ok(
            Method::POST,
            &format!("/projects/{project}/deploy_tokens"),
            root,
            Some(json!({"name": "d", "scopes": ["read_registry"]})),
            StatusCode::CREATED,
        )
        .await;
    stack
        .ok(
            Method::POST,
            &format!("/projects/{project}/access_tokens"),
            root,
            Some(json!({"name": "bot", "scopes": ["read_registry"], "access_level": 20})),
            StatusCode::CREATED,
        )
        .await;
    stack
        .ok(
            Method::POST,
            &format!("/projects/{project}/job_token_scope/allowlist"),
            root,
            Some(json!({"target_project_id": other})),
            StatusCode::CREATED,
        )
        .await;
    let jwt = stack
        .registry_token(Some(("root", root)), &["repository:ib/app:pull,push"])
        .await;
    let base = format!("{}/v2/ib/app", stack.registry.url);
    let config = b"{\"input-bounds\":1}".to_vec();
    let digest = Digest::sha256(&config);
    let r = stack
        .http
        .post(format!("{base}/blobs/uploads/?digest={digest}"))
        .bearer_auth(&jwt)
        .body(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let manifest = crate::support::image_manifest((&digest, config.len()), &[], json!({}));
    let r = stack
        .http
        .put(format!("{base}/manifests/v1"))
        .bearer_auth(&jwt)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{project}/registry/repositories"),
            root,
            None,
            StatusCode::OK,
        )
        .await;
    let repository = repos[0]["id"].as_i64().expect("repository id");
    (group, project, repository, Digest::sha256(&manifest))
}

/// `template` (an OpenAPI path) with its placeholders filled from the fixture.
fn fill(template: &str, ids: &(i64, i64, i64, Digest)) -> String {
    let (group, project, repository, digest) = ids;
    let owner = if template.starts_with("/groups/") {
        group
    } else {
        project
    };
    template
        .replace("{repository_id}", &repository.to_string())
        .replace("{tag_name}", "v1")
        .replace("{digest}", &digest.to_string())
        .replace("{user_id}", "1")
        .replace(
            "/registry/repositories/{id}",
            &format!("/registry/repositories/{repository}"),
        )
        .replace("/users/{id}", "/users/1")
        .replace("{id}", &owner.to_string())
        .split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

stack_test!(huge_page_numbers_give_empty_pages, |stack| {
    let ids = fixture(&stack).await;
    // The reported request: anonymous, the largest 64-bit page.
    let r = stack
        .http
        .get(format!(
            "{}/api/v4/projects?page={HUGE_PAGE}",
            stack.auth.url
        ))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-page"], HUGE_PAGE);
    assert_eq!(r.headers()["x-next-page"], "");
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));

    // Every GET the API documents, with the page at the edge of 64 bits (and the largest
    // page size, so the offset would overflow too): no server error anywhere, and every
    // paginated listing answers an empty page.
    let doc: Value = stack
        .http
        .get(format!("{}/api/v4/openapi.json", stack.auth.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut paginated = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if item.get("get").is_none() {
            continue;
        }
        let path = fill(template, &ids);
        for query in [
            format!("page={HUGE_PAGE}&per_page=100"),
            format!("page={HUGE_PAGE}&per_page=100&pagination=keyset"),
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let r = stack
                .api(
                    Method::GET,
                    &format!("{path}{sep}{query}"),
                    &stack.root_token,
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}?{query}: {e}"));
            let status = r.status();
            let page_header = r.headers().get("x-page").cloned();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                !status.is_server_error(),
                "GET {path}?{query}: {status} {body}"
            );
            if page_header.is_some() {
                assert_eq!(status, StatusCode::OK, "GET {path}?{query}");
                assert_eq!(body, json!([]), "GET {path}?{query}");
                paginated.push(template.clone());
            }
        }
    }
    paginated.sort();
    paginated.dedup();
    // Every offset listing was reached with rows behind it, so each answered for real.
    for expected in [
        "/projects",
        "/groups",
        "/users",
        "/personal_access_tokens",
        "/groups/{id}/projects",
        "/groups/{id}/subgroups",
        "/projects/{id}/members",
        "/projects/{id}/members/all",
        "/projects/{id}/deploy_tokens",
        "/projects/{id}/access_tokens",
        "/projects/{id}/job_token_scope/allowlist",
        "/projects/{id}/registry/repositories",
        "/groups/{id}/registry/repositories",
        "/projects/{id}/registry/repositories/{repository_id}/tags",
    ] {
        assert!(
            paginated.iter().any(|p| p == expected),
            "{expected} not among the paginated listings: {paginated:?}"
        );
    }
    // Past 64 bits the page is not an integer the API takes: GitLab's 400.
    let (status, body) = stack
        .call(
            Method::GET,
            "/projects?page=99999999999999999999",
            &stack.root_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"message": "page is invalid"}));
});

both!(registry_numbers_are_validated, |env| {
    const NAME: &str = "acme/platform/api";
    push_image(&env, NAME, "v1", "bounds").await;
    let token = env.token(NAME, &["pull", "push"]);
    let catalog = env.keys.token_for(vec![berth_token::Access {
        kind: "registry".into(),
        name: "catalog".into(),
        actions: vec!["*".into()],
        meta: None,
    }]);
    for n in ["abc", "-1", "1.5", "", "+2", "0x10"] {
        for (path, token) in [
            (format!("/v2/{NAME}/tags/list?n={n}"), &token),
            (format!("/v2/_catalog?n={n}"), &catalog),
        ] {
            let r = env.get(&path, token).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(error_code(r).await, "PAGINATION_NUMBER_INVALID", "{path}");
        }
    }
    // A number beyond 64 bits is still a number: clamped like any large page.
    let r = env
        .get(
            &format!("/v2/{NAME}/tags/list?n=99999999999999999999999"),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["tags"], json!(["v1"]));

    // A chunk whose end is the largest 64-bit number: its length would overflow.
    let r = env
        .post(&format!("/v2/{NAME}/blobs/uploads/"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = env
        .patch(&location, &token)
        .header("content-range", format!("0-{}", u64::MAX))
        .body("x")
        .send()
        .await
        .expect("an answer, not a dropped connection");
    // A range no upload can satisfy: 416, as for any range that does not fit the upload.
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(error_code(r).await, "RANGE_INVALID");
});

/// The registry's counter `name` (0 when it was never incremented).
async fn counter(env: &crate::support::Env, name: &str) -> f64 {
    let text = env
        .http
        .get(format!("{}/metrics", env.url()))
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

both!(immutable_patterns_compile_once_per_change, |env| {
    const NAME: &str = "acme/platform/api";
    const COMPILED: &str = "berth_registry_tag_pattern_compilations_total";
    let token = |patterns: &[&str]| {
        let mut access = berth_token::Access::repository(NAME, &["pull", "push"]);
        access.meta = Some(berth_token::AccessMeta {
            tag_immutable_patterns: Some(patterns.iter().map(|p| (*p).to_owned()).collect()),
            ..Default::default()
        });
        env.keys.token_for(vec![access])
    };
    let config = b"{\"patterns\":1}".to_vec();
    let digest = crate::support::push_blob(&env, NAME, &config).await;
    let manifest = |n: usize| {
        crate::support::image_manifest(
            (&digest, config.len()),
            &[],
            json!({"annotations": {"n": n.to_string()}}),
        )
    };
    let put = |jwt: String, tag: String, body: Vec<u8>| {
        let r = env
            .put(&format!("/v2/{NAME}/manifests/{tag}"), jwt)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body);
        async move { r.send().await.unwrap().status() }
    };
    // Five pushes, each with a fresh token carrying the same rules: compiled once.
    for n in 0..5 {
        let status = put(token(&["^v[0-9]+$"]), format!("t{n}"), manifest(n)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(counter(&env, COMPILED).await, 1.0);
    // The rules still apply: an existing matching tag is not overwritten.
    assert_eq!(
        put(token(&["^v[0-9]+$"]), "v1".into(), manifest(10)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(token(&["^v[0-9]+$"]), "v1".into(), manifest(11)).await,
        StatusCode::CONFLICT
    );
    assert_eq!(counter(&env, COMPILED).await, 1.0);
    // A change of the rules is compiled once more, then reused.
    for n in 20..23 {
        let status = put(
            token(&["^v[0-9]+$", "^release-"]),
            format!("t{n}"),
            manifest(n),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(counter(&env, COMPILED).await, 2.0);
});

stack_test!(wrongly_typed_fields_are_refused, |stack| {
    let root = stack.root_token.clone();
    let group = stack.create_group("typed", None).await["id"]
        .as_i64()
        .unwrap();
    let project = stack
        .create_project(group, "app", "private", "enabled")
        .await["id"]
        .as_i64()
        .unwrap();
    let cases: Vec<(Method, String, Value, &str)> = vec![
        // A list where text is expected (was: ignored, the path derived from the name).
        (
            Method::POST,
            "/groups".into(),
            json!({"name": "typed2", "path": ["typed2"]}),
            "path is invalid",
        ),
        // An object where text is expected (was: ignored, 200 with nothing changed).
        (
            Method::PUT,
            format!("/projects/{project}"),
            json!({"visibility": {"level": "public"}}),
            "visibility is invalid",
        ),
        // A number that is not a boolean (was: read as true).
        (
            Method::PUT,
            format!("/projects/{project}"),
            json!({"container_registry_enabled": 2}),
            "container_registry_enabled is invalid",
        ),
        // A list holding a non-string (was: the number dropped, the token created).
        (
            Method::POST,
            "/users/1/personal_access_tokens".into(),
            json!({"name": "t", "scopes": ["read_api", 5]}),
            "scopes is invalid",
        ),
        // A number where a list is expected (was: no scopes at all).
        (
            Method::POST,
            format!("/projects/{project}/deploy_tokens"),
            json!({"name": "d", "scopes": 7}),
            "scopes is invalid",
        ),
        // A value outside the parameter's list (was: read as "not active").
        (
            Method::GET,
            "/personal_access_tokens?state=bogus".into(),
            Value::Null,
            "state does not have a valid value",
        ),
        // Immutable tag patterns: short, but megabytes once compiled.
        (
            Method::POST,
            format!("/projects/{project}/registry/protection/tag/rules"),
            json!({"tag_name_pattern": "\\w{100}"}),
            "tag_name_pattern should be a valid RE2 regular expression",
        ),
        // The same for a cleanup policy's regex.
        (
            Method::PUT,
            format!("/projects/{project}"),
            json!({"container_expiration_policy_attributes": {"name_regex_keep": "[\\p{L}\\p{N}]{200}"}}),
            "container_expiration_policy.name_regex_keep not valid RE2 syntax",
        ),
    ];
    for (method, path, body, message) in cases {
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = stack.call(method.clone(), &path, &root, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_eq!(answer, json!({"message": message}), "{method} {path}");
    }

    // Bulk tag deletion: its regexes are bounded like a policy's (255 characters), in the
    // endpoint's own `{"error"}` form.
    let jwt = stack
        .registry_token(Some(("root", &root)), &["repository:typed/app:pull,push"])
        .await;
    let config = b"{\"typed\":1}".to_vec();
    let digest = Digest::sha256(&config);
    let base = format!("{}/v2/typed/app", stack.registry.url);
    let r = stack
        .http
        .post(format!("{base}/blobs/uploads/?digest={digest}"))
        .bearer_auth(&jwt)
        .body(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = stack
        .http
        .put(format!("{base}/manifests/v1"))
        .bearer_auth(&jwt)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(crate::support::image_manifest(
            (&digest, config.len()),
            &[],
            json!({}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{project}/registry/repositories"),
            &root,
            None,
            StatusCode::OK,
        )
        .await;
    let tags = format!(
        "/projects/{project}/registry/repositories/{}/tags",
        repos[0]["id"]
    );
    for (body, message) in [
        (
            json!({"name_regex_delete": "a".repeat(256)}),
            "name_regex_delete is too long (maximum is 255 characters)",
        ),
        (
            json!({"name_regex_delete": ".*", "name_regex_keep": "b".repeat(256)}),
            "name_regex_keep is too long (maximum is 255 characters)",
        ),
        (
            json!({"name_regex_delete": ["v1"]}),
            "name_regex_delete is invalid",
        ),
    ] {
        let (status, answer) = stack.call(Method::DELETE, &tags, &root, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer, json!({"error": message}));
    }

    // The OAuth password grant: a list where its scope text goes (was: ignored, so the
    // token got the default `api` scope).
    let r = stack
        .http
        .post(format!("{}/oauth/token", stack.auth.url))
        .json(&json!({
            "grant_type": "password", "username": "root",
            "password": crate::stack::ROOT_PASSWORD, "scope": ["read_api"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["error_description"], "scope is invalid");

    // Nothing was created or changed by the refused requests.
    let v = stack
        .ok(
            Method::GET,
            &format!("/projects/{project}"),
            &root,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["visibility"], "private");
    let (status, _) = stack.call(Method::GET, "/groups/typed2", &root, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});
