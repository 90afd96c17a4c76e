//! Every `docker login` credential with real clients (podman, skopeo) against real berth-auth
//! and berth-registry: a Developer's PAT pushes and pulls, deploy tokens pull or push but
//! never delete, a CI job token pushes only into its own project and pulls from another only
//! once that project's allowlist names it, and finished jobs, revoked PATs and expired deploy
//! tokens no longer log in. Also: a cross-repository mount from a repository the caller may
//! not pull becomes a plain upload session and links nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::matrix::{jwt_payload, push_tiny_image, registry_call};
use crate::podman::{Clients, clients_available, refused};
use crate::stack::Stack;
use crate::stack_test;

/// Group `g`, private projects `g/app` and `g/other` whose registries follow
/// visibility, and `dev`, a Developer of both, with an `api` PAT made by root.
struct Fixture {
    gid: i64,
    app: i64,
    other: i64,
    dev: i64,
    dev_api: String,
}

async fn fixture(stack: &Stack) -> Fixture {
    let group = stack.create_group("g", None).await;
    let gid = group["id"].as_i64().unwrap();
    let app = stack.create_project(gid, "app", "private", "enabled").await;
    let other = stack
        .create_project(gid, "other", "private", "enabled")
        .await;
    assert_eq!(app["path_with_namespace"], "g/app");
    let (app, other) = (app["id"].as_i64().unwrap(), other["id"].as_i64().unwrap());
    let dev = stack.create_user("dev", "dev-password-123").await;
    stack.add_member("projects", app, dev, 30).await;
    stack.add_member("projects", other, dev, 30).await;
    let dev_api = stack.pat(dev, &["api"]).await;
    Fixture {
        gid,
        app,
        other,
        dev,
        dev_api,
    }
}

/// `dev` makes a PAT for themselves with their `api` PAT; (id, token).
async fn self_made_pat(stack: &Stack, f: &Fixture, name: &str, scopes: &[&str]) -> (i64, String) {
    let v = stack
        .ok(
            Method::POST,
            &format!("/users/{}/personal_access_tokens", f.dev),
            &f.dev_api,
            Some(json!({"name": name, "scopes": scopes})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(v["scopes"], json!(scopes), "{v}");
    (
        v["id"].as_i64().unwrap(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

async fn deploy_token(stack: &Stack, project: i64, body: Value) -> (i64, String, String) {
    let v = stack
        .ok(
            Method::POST,
            &format!("/projects/{project}/deploy_tokens"),
            &stack.root_token,
            Some(body),
            StatusCode::CREATED,
        )
        .await;
    (
        v["id"].as_i64().unwrap(),
        v["username"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

stack_test!(credentials_pat_deploy_tokens_revoked_and_expired, |stack| {
    if !clients_available() {
        return;
    }
    let started = std::time::Instant::now();
    let f = fixture(&stack).await;
    let c = Clients::new(&stack);

    // A Developer's own `read_registry,write_registry` PAT: login, push, rmi, pull.
    let (_, pat) = self_made_pat(&stack, &f, "podman", &["read_registry", "write_registry"]).await;
    c.login("dev", &pat).unwrap();
    let ctx = c.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "pushed by podman\n").unwrap();
    let image = c.image("g/app:v1");
    c.podman(&["build", "--quiet", "-t", &image, &ctx.display().to_string()])
        .unwrap();
    let digestfile = c.dir.path().join("podman-digest");
    c.podman(&[
        "push",
        "--tls-verify=false",
        "--authfile",
        &c.authfile(),
        "--digestfile",
        &digestfile.display().to_string(),
        &image,
    ])
    .unwrap();
    let pushed = std::fs::read_to_string(&digestfile)
        .unwrap()
        .trim()
        .to_owned();
    assert!(pushed.starts_with("sha256:"), "{pushed}");
    c.podman(&["rmi", "-f", &image]).unwrap();
    c.podman(&[
        "pull",
        "--tls-verify=false",
        "--authfile",
        &c.authfile(),
        &image,
    ])
    .unwrap();
    let pulled = c
        .podman(&["image", "inspect", "--format", "{{.Digest}}", &image])
        .unwrap();
    assert_eq!(pulled.trim(), pushed, "podman pulls what it pushed");
    eprintln!("podman push/pull done after {:.1?}", started.elapsed());

    // A `read_registry` deploy token pulls and cannot push.
    let (_, ro_user, ro) = deploy_token(
        &stack,
        f.app,
        json!({"name": "ro", "scopes": ["read_registry"]}),
    )
    .await;
    assert_eq!(c.inspect("g/app:v1", &ro_user, &ro).unwrap(), pushed);
    // It covers its own project only, and only under its own username.
    let token = stack
        .registry_token(Some((&ro_user, &ro)), &["repository:g/other:pull"])
        .await;
    assert_eq!(jwt_payload(&token)["access"], json!([]), "not g/other");
    let r = stack.jwt(Some(("dev", &ro)), &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "another username");
    refused(
        c.push("g/app:by-ro", &ro_user, &ro),
        "push with a read-only deploy token",
    );

    // A `write_registry` deploy token (with `read_registry`, as pushing clients need) pushes
    // and cannot delete.
    let (_, rw_user, rw) = deploy_token(
        &stack,
        f.app,
        json!({"name": "rw", "scopes": ["read_registry", "write_registry"]}),
    )
    .await;
    let by_deploy = c.push("g/app:by-deploy", &rw_user, &rw).unwrap();
    assert_eq!(
        c.inspect("g/app:by-deploy", &ro_user, &ro).unwrap(),
        by_deploy
    );
    let tags = stack
        .registry_token(Some(("dev", &pat)), &["repository:g/app:pull"])
        .await;
    let r = stack
        .http
        .get(format!("{}/v2/g/app/tags/list", stack.registry.url))
        .bearer_auth(&tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["by-deploy", "v1"]),
        "the read-only deploy token pushed nothing"
    );
    let token = stack
        .registry_token(
            Some((&rw_user, &rw)),
            &["repository:g/app:pull,push,delete"],
        )
        .await;
    assert_eq!(
        jwt_payload(&token)["access"][0]["actions"],
        json!(["pull", "push"]),
        "delete is dropped for deploy tokens"
    );
    let (status, code) = registry_call(
        &stack,
        Method::DELETE,
        &format!("/v2/g/app/manifests/{by_deploy}"),
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    assert_eq!(
        c.inspect("g/app:by-deploy", &rw_user, &rw).unwrap(),
        by_deploy,
        "still there"
    );

    // A revoked PAT no longer logs in.
    let (doomed_id, doomed) = self_made_pat(&stack, &f, "doomed", &["read_registry"]).await;
    assert_eq!(
        stack.jwt(Some(("dev", &doomed)), &[]).await.status(),
        StatusCode::OK
    );
    stack
        .ok(
            Method::DELETE,
            &format!("/personal_access_tokens/{doomed_id}"),
            &f.dev_api,
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    refused(c.login("dev", &doomed), "login with a revoked PAT");

    // An expired deploy token no longer logs in. The API refuses a past expiry, so the
    // token expires in the database.
    let (status, v) = stack
        .call(
            Method::POST,
            &format!("/projects/{}/deploy_tokens", f.app),
            &stack.root_token,
            Some(json!({"name": "stale", "scopes": ["read_registry"],
                        "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (expiring_id, exp_user, expiring) = deploy_token(
        &stack,
        f.app,
        json!({"name": "expiring", "scopes": ["read_registry"],
               "expires_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()}),
    )
    .await;
    c.login(&exp_user, &expiring).unwrap();
    expire_deploy_token(&stack, expiring_id).await;
    refused(
        c.login(&exp_user, &expiring),
        "login with an expired deploy token",
    );
    // The live PAT still logs in.
    c.login("dev", &pat).unwrap();
    eprintln!("credentials test done in {:.1?}", started.elapsed());
});

/// Move deploy token `id`'s expiry into the past, in the database.
async fn expire_deploy_token(stack: &Stack, id: i64) {
    use berth_db::entity::deploy_tokens;
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let row = deploy_tokens::Entity::find_by_id(id)
        .one(&db.write)
        .await
        .unwrap()
        .expect("deploy token row");
    let mut row = row.into_active_model();
    row.expires_at = Set(Some(chrono::Utc::now() - chrono::Duration::hours(1)));
    row.update(&db.write).await.unwrap();
}

stack_test!(credentials_job_token, |stack| {
    if !clients_available() {
        return;
    }
    let started = std::time::Instant::now();
    let f = fixture(&stack).await;
    let c = Clients::new(&stack);
    let dev_rw = stack.pat(f.dev, &["read_registry", "write_registry"]).await;
    let in_other = c.push("g/other:v1", "dev", &dev_rw).unwrap();

    let job = stack
        .ok(
            Method::POST,
            &format!("/projects/{}/jobs", f.app),
            &f.dev_api,
            Some(json!({"ref": "main"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(job["status"], "running", "{job}");
    let job_id = job["id"].as_i64().unwrap();
    let job_token = job["token"].as_str().unwrap().to_owned();
    let vars = &job["variables"];
    assert_eq!(vars["CI_REGISTRY_USER"], "gitlab-ci-token", "{job}");
    assert_eq!(vars["CI_JOB_TOKEN"], job_token.as_str(), "{job}");
    assert_eq!(
        vars["CI_REGISTRY_IMAGE"],
        c.image("g/app").as_str(),
        "{job}"
    );
    let user = vars["CI_REGISTRY_USER"].as_str().unwrap().to_owned();

    // Its own project: login and push.
    c.login(&user, &job_token).unwrap();
    let pushed = c.push("g/app/ci:v1", &user, &job_token).unwrap();
    assert_eq!(c.inspect("g/app/ci:v1", &user, &job_token).unwrap(), pushed);
    // Another project: no push, even though its user is a Developer there; no pull until
    // that project's allowlist names the job's project.
    refused(
        c.push("g/other:by-job", &user, &job_token),
        "job pushes into another project",
    );
    refused(
        c.inspect("g/other:v1", &user, &job_token),
        "job pulls from another project not allowlisting it",
    );
    stack
        .ok(
            Method::POST,
            &format!("/projects/{}/job_token_scope/allowlist", f.other),
            &stack.root_token,
            Some(json!({"target_project_id": f.app})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(
        c.inspect("g/other:v1", &user, &job_token).unwrap(),
        in_other
    );
    refused(
        c.push("g/other:by-job", &user, &job_token),
        "job pushes into another project that allowlists it",
    );

    // Finished: the token is dead.
    stack
        .ok(
            Method::POST,
            &format!("/jobs/{job_id}/finish"),
            &f.dev_api,
            None,
            StatusCode::OK,
        )
        .await;
    refused(
        c.login(&user, &job_token),
        "login with a finished job's token",
    );
    let r = stack.jwt(Some((&user, &job_token)), &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    eprintln!("job token test done in {:.1?}", started.elapsed());
});

stack_test!(
    credentials_mount_without_pull_on_source_is_a_plain_upload,
    |stack| {
        let f = fixture(&stack).await;
        let mine = stack
            .create_project(f.gid, "mine", "private", "enabled")
            .await["id"]
            .as_i64()
            .unwrap();
        // eve: Developer of g/mine only; dev: Developer of g/app and g/mine.
        let eve = stack.create_user("eve", "eve-password-123").await;
        stack.add_member("projects", mine, eve, 30).await;
        stack.add_member("projects", mine, f.dev, 30).await;
        let eve_pat = stack.pat(eve, &["read_registry", "write_registry"]).await;
        let dev_pat = stack.pat(f.dev, &["read_registry", "write_registry"]).await;
        let dev_app = stack
            .registry_token(Some(("dev", &dev_pat)), &["repository:g/app:pull,push"])
            .await;
        let (_, layer) = push_tiny_image(&stack, &dev_app, "g/app", "v1", "secret").await;

        // eve asks for push on g/mine and pull on g/app: the pull is silently dropped.
        let eve_token = stack
            .registry_token(
                Some(("eve", &eve_pat)),
                &["repository:g/mine:pull,push", "repository:g/app:pull"],
            )
            .await;
        let access = jwt_payload(&eve_token)["access"].clone();
        assert_eq!(access.as_array().unwrap().len(), 1, "{access}");
        assert_eq!(access[0]["name"], "g/mine");
        assert_eq!(access[0]["actions"], json!(["pull", "push"]));
        let mount = |token: String, target: &'static str| {
            let url = format!(
                "{}/v2/{target}/blobs/uploads/?mount={layer}&from=g/app",
                stack.registry.url
            );
            let http = stack.http.clone();
            async move { http.post(url).bearer_auth(token).send().await.unwrap() }
        };
        let r = mount(eve_token.clone(), "g/mine").await;
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "a plain upload session, not a mount"
        );
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with("/v2/g/mine/blobs/uploads/"),
            "{location}"
        );
        let (status, _) = registry_call(
            &stack,
            Method::HEAD,
            &format!("/v2/g/mine/blobs/{layer}"),
            Some(&eve_token),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing linked to g/mine");

        // Control: dev may pull g/app, so the same mount links the blob.
        let dev_token = stack
            .registry_token(
                Some(("dev", &dev_pat)),
                &["repository:g/mine:pull,push", "repository:g/app:pull"],
            )
            .await;
        assert_eq!(
            jwt_payload(&dev_token)["access"].as_array().unwrap().len(),
            2
        );
        let r = mount(dev_token.clone(), "g/mine").await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(
            r.headers()["location"],
            format!("/v2/g/mine/blobs/{layer}").as_str()
        );
        let (status, _) = registry_call(
            &stack,
            Method::HEAD,
            &format!("/v2/g/mine/blobs/{layer}"),
            Some(&dev_token),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
);
