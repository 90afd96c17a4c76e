//! Every credential of SPEC 4.2 with real clients (podman, skopeo) against real berth-auth
//! and berth-registry: a Developer's PAT pushes and pulls, deploy tokens pull or push but
//! never delete, a CI job token pushes only into its own project and pulls from another only
//! once that project's allowlist names it, and finished jobs, revoked PATs and expired deploy
//! tokens no longer log in. Also: a cross-repository mount from a repository the caller may
//! not pull becomes a plain upload session and links nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_core::Digest;
use berth_test_support::has_program;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::matrix::{jwt_payload, push_tiny_image, registry_call};
use crate::stack::Stack;
use crate::stack_test;

/// podman (own storage root, vfs) and skopeo, with a tiny OCI image layout on disk.
struct Clients {
    dir: tempfile::TempDir,
    host: String,
}

impl Clients {
    fn new(stack: &Stack) -> Clients {
        let dir = tempfile::tempdir().unwrap();
        write_oci_layout(&dir.path().join("layout"), "pushed by skopeo\n");
        Clients {
            dir,
            host: stack.registry_host(),
        }
    }

    fn authfile(&self) -> String {
        self.dir.path().join("auth.json").display().to_string()
    }

    /// `oci:<layout>:v1`, the image skopeo pushes.
    fn layout(&self) -> String {
        format!("oci:{}:v1", self.dir.path().join("layout").display())
    }

    /// `host/<reference>`.
    fn image(&self, reference: &str) -> String {
        format!("{}/{reference}", self.host)
    }

    fn podman(&self, args: &[&str]) -> Result<String, String> {
        let root = self.dir.path().join("root");
        let runroot = self.dir.path().join("runroot");
        let mut full = vec![
            "--storage-driver".to_string(),
            "vfs".into(),
            "--root".into(),
            root.display().to_string(),
            "--runroot".into(),
            runroot.display().to_string(),
        ];
        full.extend(args.iter().map(|s| s.to_string()));
        run("podman", &full)
    }

    fn skopeo(&self, args: &[&str]) -> Result<String, String> {
        run(
            "skopeo",
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    /// `podman login` (nothing is stored when it fails).
    fn login(&self, user: &str, secret: &str) -> Result<String, String> {
        self.podman(&[
            "login",
            "--tls-verify=false",
            "--authfile",
            &self.authfile(),
            "-u",
            user,
            "-p",
            secret,
            &self.host,
        ])
    }

    /// `skopeo copy` of the layout to `host/<reference>` as `user:secret`; the pushed
    /// manifest digest.
    fn push(&self, reference: &str, user: &str, secret: &str) -> Result<String, String> {
        let digestfile = self.dir.path().join("skopeo-digest");
        let _ = std::fs::remove_file(&digestfile);
        self.skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("{user}:{secret}"),
            "--digestfile",
            &digestfile.display().to_string(),
            &self.layout(),
            &format!("docker://{}", self.image(reference)),
        ])?;
        Ok(std::fs::read_to_string(&digestfile)
            .unwrap()
            .trim()
            .to_owned())
    }

    /// `skopeo inspect` of `host/<reference>` as `user:secret`: the manifest digest.
    fn inspect(&self, reference: &str, user: &str, secret: &str) -> Result<String, String> {
        let out = self.skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("{user}:{secret}"),
            &format!("docker://{}", self.image(reference)),
        ])?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        Ok(v["Digest"].as_str().unwrap_or_default().to_owned())
    }
}

fn run(program: &str, args: &[String]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{program} {}:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text)
    }
}

/// The client failed, and for want of authorization (not, say, a connection error).
#[track_caller]
fn refused(result: Result<String, String>, what: &str) {
    match result {
        Ok(out) => panic!("{what}: succeeded, but must be refused:\n{out}"),
        Err(err) => {
            let lower = err.to_lowercase();
            assert!(
                ["unauthorized", "denied", "invalid username/password"]
                    .iter()
                    .any(|w| lower.contains(w)),
                "{what}: failed, but not for want of authorization:\n{err}"
            );
        }
    }
}

fn clients_available() -> bool {
    berth_test_support::require(
        "podman and skopeo",
        has_program("podman") && has_program("skopeo"),
    )
}

/// A one-file uncompressed tar (ustar), as an image layer.
fn tar_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let s = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 1_700_000_000);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

/// An OCI image layout at `dir` with one image tagged `v1`: one file in one layer.
fn write_oci_layout(dir: &Path, content: &str) {
    let blobs: PathBuf = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = Digest::sha256(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        (d.to_string(), data.len())
    };
    let layer = tar_one_file("hello.txt", content.as_bytes());
    let (layer_digest, layer_size) = put(&layer);
    let config = json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

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
