//! python-gitlab, the client GitLab users script with, drives Berth's management API
//! (issue 4, acceptance 1 and 2): `tests/python/gitlab_client.py` lists repositories of a
//! project and a group with `tags`/`tags_count`, checks tag details against what podman
//! pushed, sees the pull count of three `podman pull`s, deletes a tag, bulk-deletes with
//! every rule and checks exactly which tags remain, reads and updates the cleanup policy
//! and switches `container_registry_access_level`.
//!
//! This side prepares what the script checks against: images pushed with podman, one pulled
//! three times (plus HEADs), tags aged in the database (a test cannot wait ten days) and an
//! immutable rule. python-gitlab comes from PyPI (`.ci/run` installs it into a venv and sets
//! `BERTH_PYTHON`); without it the test is skipped loudly, and fails under CI.

use std::process::Command;

use berth_db::entity::{repositories, tags};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::podman::{Clients, clients_available};
use crate::stack::{Options, Stack};
use crate::usage_facts::metric;

/// The interpreter with python-gitlab: `BERTH_PYTHON`, else `python3`.
fn python() -> Option<String> {
    let python = std::env::var("BERTH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_gitlab = Command::new(&python)
        .args(["-c", "import gitlab"])
        .output()
        .is_ok_and(|o| o.status.success());
    berth_test_support::require("python3 with python-gitlab (BERTH_PYTHON)", has_gitlab)
        .then_some(python)
}

/// Bulk-deletion fixture: tag name and age in days. The script's expectations follow
/// from these ages (see gitlab_client.py).
const BULK: &[(&str, i64)] = &[
    ("latest", 30),
    ("v1.0", 20),
    ("v1.1", 15),
    ("v1.2", 10),
    ("v2.0", 1),
    ("keep-me", 40),
    ("dev-a", 2),
    ("dev-b", 3),
    ("old-1", 12),
    ("old-2", 9),
    ("imm-1", 50),
];

async fn run(mut stack: Stack, python: &str) {
    // Bulk deletions are jobs a berth-gc runs (only its job workers here).
    let _gc = stack
        .start_gc(&[
            ("BERTH_JOB_POLL_INTERVAL", "100ms"),
            ("BERTH_GC_BLOB_WORKERS", "0"),
            ("BERTH_GC_MANIFEST_WORKERS", "0"),
        ])
        .await;
    let group = stack.create_group("py", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let uid = stack.create_user("maint", "maint-password-1").await;
    stack.add_member("projects", pid, uid, 40).await;
    let pat = stack
        .pat(uid, &["api", "read_registry", "write_registry"])
        .await;
    stack
        .ok(
            Method::POST,
            &format!("/projects/{pid}/registry/protection/tag/rules"),
            &stack.root_token,
            Some(json!({"tag_name_pattern": "^imm-"})),
            StatusCode::CREATED,
        )
        .await;

    // podman: build, push to three repositories, keep the digest podman reports.
    let c = Clients::new(&stack);
    c.login("maint", &pat).unwrap();
    let ctx = c.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "pushed for python-gitlab\n").unwrap();
    let image = c.image("py/app:v1");
    c.podman(&["build", "--quiet", "-t", &image, &ctx.display().to_string()])
        .unwrap();
    let digestfile = c.dir.path().join("digest");
    let auth = c.authfile();
    let push = |dest: &str| {
        c.podman(&[
            "push",
            "--tls-verify=false",
            "--authfile",
            &auth,
            "--digestfile",
            &digestfile.display().to_string(),
            &image,
            &format!("docker://{}", c.image(dest)),
        ])
        .unwrap();
        std::fs::read_to_string(&digestfile)
            .unwrap()
            .trim()
            .to_owned()
    };
    let v1_digest = push("py/app:v1");
    push("py/app/web:stable");
    push("py/app/bulk:latest");

    // The manifest podman pushed (its digest checked against podman's): config and sizes.
    // Fetched by digest, which counts a pull of the repository but not of the tag.
    let jwt = stack
        .registry_token(
            Some(("maint", &pat)),
            &["repository:py/app:pull", "repository:py/app/bulk:pull,push"],
        )
        .await;
    let r = stack
        .http
        .get(format!(
            "{}/v2/py/app/manifests/{v1_digest}",
            stack.registry.url
        ))
        .bearer_auth(&jwt)
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let media_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    let bytes = r.bytes().await.unwrap();
    assert_eq!(berth_core::Digest::sha256(&bytes).to_string(), v1_digest);
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let total_size = manifest["config"]["size"].as_i64().unwrap()
        + manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_i64().unwrap())
            .sum::<i64>();

    // The bulk fixture: the same manifest under every tag, then aged in the database.
    for (tag, _) in BULK.iter().filter(|(t, _)| *t != "latest") {
        let r = stack
            .http
            .put(format!(
                "{}/v2/py/app/bulk/manifests/{tag}",
                stack.registry.url
            ))
            .bearer_auth(&jwt)
            .header("content-type", &media_type)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "tag {tag}");
    }
    age_tags(&stack, "py/app/bulk", BULK).await;

    // Three `podman pull`s of v1 (removing the local copy each time) and two HEADs.
    for _ in 0..3 {
        c.podman(&["rmi", "-f", &image]).unwrap();
        c.podman(&["pull", "--tls-verify=false", "--authfile", &auth, &image])
            .unwrap();
    }
    for _ in 0..2 {
        let r = stack
            .http
            .head(format!("{}/v2/py/app/manifests/v1", stack.registry.url))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // No database write per pull: the flush interval is an hour, so after the pulls the
    // database still says 0 while the registry holds 3 in memory (its metric of pending
    // pulls would not tell a write-through counter apart; the row does). Stopping the
    // registry gracefully writes them in one transaction; the script then sees 3.
    assert_eq!(tag_pull_count(&stack, "py/app", "v1").await, 0);
    let flushes_before = metric(&stack, "berth_registry_usage_flushes_total").await;
    assert_eq!(flushes_before, 0.0, "nothing flushed before shutdown");
    stack.registry.terminate();
    assert_eq!(tag_pull_count(&stack, "py/app", "v1").await, 3);

    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/gitlab_client.py"
        ))
        .env("BERTH_API_URL", &stack.auth.url)
        .env("BERTH_TOKEN", &pat)
        .env("BERTH_REGISTRY_HOST", stack.registry_host())
        .env("BERTH_V1_DIGEST", &v1_digest)
        .env("BERTH_V1_CONFIG_DIGEST", &config_digest)
        .env("BERTH_V1_TOTAL_SIZE", total_size.to_string())
        .env(
            "BERTH_BULK_TAGS",
            BULK.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(","),
        )
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-gitlab checks failed:\n{stdout}\n{stderr}\n--- auth log ---\n{}",
        stack.log_text()
    );
    eprintln!("{stdout}");
}

/// The stored `pull_count` of a tag, read from the database itself.
async fn tag_pull_count(stack: &Stack, repository: &str, tag: &str) -> i64 {
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let repo = repository_id(&db, repository).await;
    tags::Entity::find()
        .filter(tags::Column::RepositoryId.eq(repo))
        .filter(tags::Column::Name.eq(tag))
        .one(&db.read)
        .await
        .unwrap()
        .expect("tag")
        .pull_count
}

async fn repository_id(db: &berth_db::Db, name: &str) -> i64 {
    repositories::Entity::find()
        .filter(repositories::Column::Name.eq(name))
        .one(&db.read)
        .await
        .unwrap()
        .expect("repository")
        .id
}

/// Backdate tags of `repository` by the given number of days (created and updated).
async fn age_tags(stack: &Stack, repository: &str, ages: &[(&str, i64)]) {
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let repo = repository_id(&db, repository).await;
    for (tag, days) in ages {
        let at = chrono::Utc::now() - chrono::Duration::days(*days);
        let n = tags::Entity::update_many()
            .col_expr(tags::Column::CreatedAt, Expr::value(at))
            .col_expr(tags::Column::UpdatedAt, Expr::value(at))
            .filter(tags::Column::RepositoryId.eq(repo))
            .filter(tags::Column::Name.eq(*tag))
            .exec(&db.write)
            .await
            .unwrap();
        assert_eq!(n.rows_affected, 1, "tag {tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_gitlab_drives_the_registry_api() {
    if !clients_available() {
        return;
    }
    let Some(python) = python() else {
        return;
    };
    let opts = Options {
        registry_env: vec![("BERTH_USAGE_FLUSH_INTERVAL".into(), "1h".into())],
        ..Default::default()
    };
    for backend in [
        berth_test_support::Backend::Sqlite,
        berth_test_support::Backend::Postgres,
    ] {
        let Some(stack) = Stack::start_with(backend, opts.clone()).await else {
            continue;
        };
        run(stack, &python).await;
    }
}
