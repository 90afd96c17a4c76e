//! Asynchronous registry deletions through the management API: bulk tag deletion with each
//! of GitLab's rules (`latest` and immutable tags kept, requests for one repository run in
//! order), repository deletion (a layer shared with another repository stays pullable, GC
//! review rows for the deleted repository's blobs, `delete_failed` while an immutable tag
//! is in the way), and a bulk deletion that survives the berth-gc running it being killed.
//! berth-auth only enqueues jobs; a berth-gc process started by each test runs them.

use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_db::entity::{gc_blob_review_queue as blob_q, tags};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::stack::{Options, Proc, Stack};
use crate::stack_test;

/// berth-gc settings for these tests: job workers polling every 100 ms.
const FAST_JOBS: [(&str, &str); 1] = [("BERTH_JOB_POLL_INTERVAL", "100ms")];

/// A berth-gc that runs the jobs these tests enqueue.
async fn job_worker(stack: &Stack) -> Proc {
    stack.start_gc(&FAST_JOBS).await
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Upload `blob` to `base` (`…/v2/<name>`); returns its digest.
async fn blob(stack: &Stack, base: &str, jwt: &str, blob: &[u8]) -> Digest {
    let digest = Digest::sha256(blob);
    let r = stack
        .http
        .post(format!("{base}/blobs/uploads/?digest={digest}"))
        .bearer_auth(jwt)
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    digest
}

/// PUT `body` (of `media_type`) as each of `tags`.
async fn put(stack: &Stack, base: &str, jwt: &str, media_type: &str, body: &[u8], tags: &[&str]) {
    for tag in tags {
        let r = stack
            .http
            .put(format!("{base}/manifests/{tag}"))
            .bearer_auth(jwt)
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }
}

/// Push an image (config seeded with `seed`, then `layers`) as each of `tags`; returns the
/// manifest's digest and size.
pub(crate) async fn push(
    stack: &Stack,
    base: &str,
    jwt: &str,
    seed: &str,
    layers: &[&[u8]],
    tags: &[&str],
) -> (Digest, usize) {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let c = blob(stack, base, jwt, &config).await;
    let mut refs = Vec::new();
    for l in layers {
        refs.push((blob(stack, base, jwt, l).await, l.len()));
    }
    let layer_refs: Vec<(&Digest, usize)> = refs.iter().map(|(d, s)| (d, *s)).collect();
    let manifest = crate::support::image_manifest((&c, config.len()), &layer_refs, json!({}));
    put(stack, base, jwt, MANIFEST_TYPE, &manifest, tags).await;
    (Digest::sha256(&manifest), manifest.len())
}

/// `/v2/<name>/tags/list`: the status and the tags.
async fn tag_list(stack: &Stack, base: &str, jwt: &str) -> (StatusCode, Value) {
    let r = stack
        .http
        .get(format!("{base}/tags/list?n=1000"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// Poll a deletion request until it is `done` or `failed` (at most 15 s); returns it.
async fn wait_finished(stack: &Stack, pid: i64, deletion: &Value, token: &str) -> Value {
    let id = deletion["id"].as_i64().expect("deletion id");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = stack
            .call(
                Method::GET,
                &format!("/projects/{pid}/registry/deletions/{id}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "deletion {id} did not finish: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Set tag `name`'s published time to `ago` before now.
async fn age(db: &berth_db::Db, repository_id: i64, name: &str, ago: chrono::Duration) {
    tags::Entity::update_many()
        .col_expr(
            tags::Column::UpdatedAt,
            Expr::value(chrono::Utc::now() - ago),
        )
        .filter(tags::Column::RepositoryId.eq(repository_id))
        .filter(tags::Column::Name.eq(name))
        .exec(&db.write)
        .await
        .unwrap();
}

/// A project `<group>/app` with a Developer and a Maintainer; returns (project id, dev
/// token, maintainer token).
pub(crate) async fn project(stack: &Stack, group: &str) -> (i64, String, String) {
    let g = stack.create_group(group, None).await;
    let p = stack
        .create_project(g["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = p["id"].as_i64().unwrap();
    let mut tokens = Vec::new();
    for (name, level) in [("dev", 30), ("keeper", 40)] {
        let user = format!("{group}-{name}");
        let id = stack.create_user(&user, "a-password-1234").await;
        stack.add_member("projects", pid, id, level).await;
        tokens.push(stack.pat(id, &["api"]).await);
    }
    let maintainer = tokens.pop().unwrap();
    let developer = tokens.pop().unwrap();
    (pid, developer, maintainer)
}

pub(crate) async fn repository_id(stack: &Stack, pid: i64, path: &str, token: &str) -> Option<i64> {
    let repos = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories"),
            token,
            None,
            StatusCode::OK,
        )
        .await;
    repos
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path)
        .map(|r| r["id"].as_i64().unwrap())
}

stack_test!(bulk_tag_delete_rules, |stack| {
    let _gc = job_worker(&stack).await;
    let (pid, developer, maintainer) = project(&stack, "bulk").await;
    let name = "bulk/app";
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull,push")],
        )
        .await;
    let base = format!("{}/v2/{name}", stack.registry.url);
    for (i, tag) in ["latest", "v1", "v2", "v3", "v4", "keep-me", "release-1"]
        .iter()
        .enumerate()
    {
        let layer = format!("layer-{i}").into_bytes();
        push(&stack, &base, &jwt, tag, &[&layer], &[tag]).await;
    }
    // v5, dev-1 and dev-2 share one manifest.
    push(
        &stack,
        &base,
        &jwt,
        "v5",
        &[b"layer-v5"],
        &["v5", "dev-1", "dev-2"],
    )
    .await;
    let repo = repository_id(&stack, pid, name, &maintainer).await.unwrap();
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let day = chrono::Duration::days(1);
    for (tag, ago) in [
        ("latest", day * 30),
        ("v1", day * 10),
        ("v2", day * 9),
        ("v3", day * 8),
        ("v4", chrono::Duration::hours(1)),
        ("v5", chrono::Duration::minutes(30)),
        ("dev-1", day * 5),
        ("dev-2", day * 5),
        ("keep-me", day * 20),
        ("release-1", day * 20),
    ] {
        age(&db, repo, tag, ago).await;
    }
    let rules = format!("/projects/{pid}/registry/protection/tag/rules");
    stack
        .ok(
            Method::POST,
            &rules,
            &maintainer,
            Some(json!({"tag_name_pattern": "^release"})),
            StatusCode::CREATED,
        )
        .await;
    let tags_path = format!("/projects/{pid}/registry/repositories/{repo}/tags");

    // Maintainer+ only; bad parameters are 400 in Grape's form, with nothing scheduled.
    let (status, body) = stack
        .call(
            Method::DELETE,
            &tags_path,
            &developer,
            Some(json!({"name_regex_delete": ".*"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (params, error) in [
        (
            json!({"keep_n": 1}),
            "name_regex, name_regex_delete are missing, at least one parameter must be provided",
        ),
        (
            json!({"name_regex_delete": "v[0-9"}),
            "name_regex_delete is an invalid regexp",
        ),
        (
            json!({"name_regex_delete": ".*", "name_regex_keep": "(a)\\1"}),
            "name_regex_keep is an invalid regexp",
        ),
        (
            json!({"name_regex_delete": ".*", "older_than": "soon"}),
            "older_than is invalid",
        ),
        (
            json!({"name_regex_delete": ".*", "keep_n": "many"}),
            "keep_n is invalid",
        ),
    ] {
        let (status, body) = stack
            .call(
                Method::DELETE,
                &tags_path,
                &maintainer,
                Some(params.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params}: {body}");
        assert_eq!(body["error"], error, "{params}");
    }
    let listed = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/deletions"),
            &maintainer,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(listed, json!([]));

    // 1. Form body: v[0-9]+ older than 2 days, keeping v5 by name → v1, v2, v3.
    let r = stack
        .api(Method::DELETE, &tags_path, &maintainer)
        .form(&[
            ("name_regex_delete", "v[0-9]+"),
            ("name_regex_keep", "v5"),
            ("older_than", "2d"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["status"], "scheduled");
    let first = wait_finished(&stack, pid, &first, &maintainer).await;
    assert_eq!(first["status"], "done", "{first}");
    assert_eq!(first["deleted_count"], 3);
    let (_, list) = tag_list(&stack, &base, &jwt).await;
    assert_eq!(
        list["tags"],
        json!([
            "dev-1",
            "dev-2",
            "keep-me",
            "latest",
            "release-1",
            "v4",
            "v5"
        ])
    );

    // 2 and 3 back to back (they run in order). 2: query string with the deprecated alias;
    // dev-1 and dev-2 share a time, so keep_n keeps dev-1 by name. 3: JSON, everything but
    // keep-*: latest and the immutable release-1 stay.
    let r = stack
        .api(
            Method::DELETE,
            &format!("{tags_path}?name_regex=dev-.*&keep_n=1"),
            &maintainer,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let second: Value = r.json().await.unwrap();
    let third = stack
        .ok(
            Method::DELETE,
            &tags_path,
            &maintainer,
            Some(json!({"name_regex_delete": ".*", "name_regex_keep": "keep-.*"})),
            StatusCode::ACCEPTED,
        )
        .await;
    let second = wait_finished(&stack, pid, &second, &maintainer).await;
    let third = wait_finished(&stack, pid, &third, &maintainer).await;
    assert_eq!(second["deleted_count"], 1, "{second}");
    assert_eq!(third["deleted_count"], 3, "{third}");
    assert!(second["finished_at"].as_str() <= third["started_at"].as_str());
    let (_, list) = tag_list(&stack, &base, &jwt).await;
    assert_eq!(list["tags"], json!(["keep-me", "latest", "release-1"]));

    // The repository's own listing, newest first; GitLab's status stays null.
    let history = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}/registry/repositories/{repo}/deletions"),
            &developer,
            None,
            StatusCode::OK,
        )
        .await;
    let counts: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["deleted_count"])
        .collect();
    assert_eq!(counts, [&json!(3), &json!(1), &json!(3)]);
    assert_eq!(history[2]["params"]["older_than"], "2d");
    let r = stack
        .ok(
            Method::GET,
            &format!("/registry/repositories/{repo}"),
            &maintainer,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(r["status"], Value::Null);
});

stack_test!(repository_delete_keeps_shared_layers, |stack| {
    let _gc = job_worker(&stack).await;
    let (pid, developer, maintainer) = project(&stack, "rdel").await;
    let (one, two) = ("rdel/app/one", "rdel/app/two");
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[
                &format!("repository:{one}:pull,push"),
                &format!("repository:{two}:pull,push"),
            ],
        )
        .await;
    let base_one = format!("{}/v2/{one}", stack.registry.url);
    let base_two = format!("{}/v2/{two}", stack.registry.url);
    let shared: &[u8] = b"a layer both repositories use";
    let image = push(
        &stack,
        &base_one,
        &jwt,
        "one",
        &[shared, b"only in one"],
        &["v1", "v2"],
    )
    .await;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{"mediaType": MANIFEST_TYPE, "digest": image.0.to_string(), "size": image.1}],
    });
    put(
        &stack,
        &base_one,
        &jwt,
        INDEX_TYPE,
        &serde_json::to_vec(&index).unwrap(),
        &["multi"],
    )
    .await;
    let (two_manifest, _) = push(&stack, &base_two, &jwt, "two", &[shared], &["latest"]).await;
    let one_id = repository_id(&stack, pid, one, &maintainer).await.unwrap();
    let path = format!("/projects/{pid}/registry/repositories/{one_id}");

    let (status, _) = stack.call(Method::DELETE, &path, &developer, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An immutable tag blocks the deletion: delete_failed, nothing touched.
    let rule = stack
        .ok(
            Method::POST,
            &format!("/projects/{pid}/registry/protection/tag/rules"),
            &maintainer,
            Some(json!({"tag_name_pattern": "^v1$"})),
            StatusCode::CREATED,
        )
        .await;
    let d = stack
        .ok(
            Method::DELETE,
            &path,
            &maintainer,
            None,
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(d["kind"], "repository");
    let d = wait_finished(&stack, pid, &d, &maintainer).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["error"].as_str().unwrap().contains("immutable tags"),
        "{d}"
    );
    let r = stack
        .ok(
            Method::GET,
            &format!("/registry/repositories/{one_id}"),
            &maintainer,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(r["status"], "delete_failed");
    assert_eq!(
        tag_list(&stack, &base_one, &jwt).await.1["tags"],
        json!(["multi", "v1", "v2"])
    );

    // Without the rule it goes through.
    stack
        .ok(
            Method::DELETE,
            &format!(
                "/projects/{pid}/registry/protection/tag/rules/{}",
                rule["id"]
            ),
            &maintainer,
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    let d = stack
        .ok(
            Method::DELETE,
            &path,
            &maintainer,
            None,
            StatusCode::ACCEPTED,
        )
        .await;
    let d = wait_finished(&stack, pid, &d, &maintainer).await;
    assert_eq!(d["status"], "done", "{d}");
    assert_eq!(d["deleted_count"], 3);

    // Gone from the API and the registry.
    assert_eq!(repository_id(&stack, pid, one, &maintainer).await, None);
    assert!(repository_id(&stack, pid, two, &maintainer).await.is_some());
    let (status, body) = tag_list(&stack, &base_one, &jwt).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN");
    let (status, _) = stack
        .call(
            Method::GET,
            &format!("/projects/{pid}/registry/deletions/{}", d["id"]),
            &maintainer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The other repository's image still pulls every byte.
    let r = stack
        .http
        .get(format!("{base_two}/manifests/latest"))
        .bearer_auth(&jwt)
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let manifest: Value = r.json().await.unwrap();
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_owned()];
    for l in manifest["layers"].as_array().unwrap() {
        digests.push(l["digest"].as_str().unwrap().to_owned());
    }
    assert!(digests.contains(&Digest::sha256(shared).to_string()));
    for digest in &digests {
        let r = stack
            .http
            .get(format!("{base_two}/blobs/{digest}"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{digest}");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(Digest::sha256(&bytes).to_string(), *digest);
    }
    assert_eq!(
        tag_list(&stack, &base_two, &jwt).await.1["tags"],
        json!(["latest"])
    );
    let _ = two_manifest;

    // Every blob of the deleted repository waits for GC review; none was deleted here.
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let one_blobs = [
        Digest::sha256(br#"{"seed":"one"}"#).to_string(),
        Digest::sha256(shared).to_string(),
        Digest::sha256(b"only in one").to_string(),
    ];
    for digest in &one_blobs {
        let row = blob_q::Entity::find_by_id(digest.clone())
            .one(&db.read)
            .await
            .unwrap();
        let row = row.unwrap_or_else(|| panic!("no GC review row for {digest}"));
        assert!(row.review_after > chrono::Utc::now(), "{row:?}");
        assert!(
            berth_db::blobs::find(&db.read, digest)
                .await
                .unwrap()
                .is_some(),
            "{digest} was deleted directly"
        );
    }
    let events: Vec<String> = blob_q::Entity::find()
        .filter(blob_q::Column::Digest.is_in(one_blobs.clone()))
        .all(&db.read)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e == "manifest_delete" || e == "blob_unlink"),
        "{events:?}"
    );

    // Deleting the project schedules the deletion of its remaining repository.
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/projects/{pid}"),
            &stack.root_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while berth_db::repositories::find_by_name(&db.read, two)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "{two} was not deleted with its project"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = berth_db::background_jobs::for_project(&db.read, pid, None, 1)
        .await
        .unwrap();
    assert!(
        last[0].payload.contains(&format!("\"{two}\"")),
        "{:?}",
        last[0]
    );
    assert_eq!((last[0].state.as_str(), last[0].progress), ("succeeded", 1));
});

/// 300 tags, a bulk delete of 240 in batches of 2, the berth-gc running it frozen and killed
/// (SIGKILL) while the run is under way and started again: once the dead process's lease runs out the request
/// is resumed and finishes with exactly the 60 tags the rules keep and 240 deletions.
async fn bulk_delete_survives_restart(stack: Stack) {
    let mut gc = stack.start_gc(&GC_ENV).await;
    let (pid, _, maintainer) = project(&stack, "crash").await;
    let name = "crash/app";
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull,push")],
        )
        .await;
    let base = format!("{}/v2/{name}", stack.registry.url);
    let all: Vec<String> = (0..300).map(|i| format!("t{i:03}")).collect();
    for (k, chunk) in all.chunks(100).enumerate() {
        let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let layer = format!("crash-layer-{k}").into_bytes();
        push(
            &stack,
            &base,
            &jwt,
            &format!("crash-{k}"),
            &[&layer],
            &names,
        )
        .await;
    }
    let repo = repository_id(&stack, pid, name, &maintainer).await.unwrap();
    let d = stack
        .ok(
            Method::DELETE,
            &format!("/projects/{pid}/registry/repositories/{repo}/tags"),
            &maintainer,
            Some(json!({"name_regex_delete": "t.*", "name_regex_keep": "t..[05]"})),
            StatusCode::ACCEPTED,
        )
        .await;
    // Kill -9 in the middle of the run: after some batches committed, before the last.
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let id = d["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = berth_db::background_jobs::find(&db.read, id)
            .await
            .unwrap()
            .unwrap();
        if now.state == "running" && now.progress > 0 {
            break;
        }
        assert_ne!(
            now.state, "succeeded",
            "the run finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "the run did not start: {now:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Freeze the process where it stands (SIGSTOP; a batch may be half done), then kill it.
    gc.pause();
    let at_kill = berth_db::background_jobs::find(&db.read, id)
        .await
        .unwrap()
        .unwrap();
    gc.kill();
    assert_eq!(at_kill.state, "running");
    assert!(at_kill.progress < 240, "{at_kill:?}");
    assert!(at_kill.lease_until.is_some());
    eprintln!(
        "killed berth-gc after {} of 240 deletions",
        at_kill.progress
    );
    let mut gc = stack.start_gc(&GC_ENV).await;
    let done = wait_finished(&stack, pid, &d, &maintainer).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["deleted_count"], 240, "{done}");
    let want: Vec<&String> = all
        .iter()
        .filter(|t| t.ends_with('0') || t.ends_with('5'))
        .collect();
    let (_, list) = tag_list(&stack, &base, &jwt).await;
    assert_eq!(list["tags"], json!(want));

    // A graceful stop (SIGTERM) mid-run gives the request back with its lease freed, so
    // the next start resumes it at once instead of waiting for the lease to run out.
    let d = stack
        .ok(
            Method::DELETE,
            &format!("/projects/{pid}/registry/repositories/{repo}/tags"),
            &maintainer,
            Some(json!({"name_regex_delete": "t.*", "name_regex_keep": "t..0"})),
            StatusCode::ACCEPTED,
        )
        .await;
    let id = d["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while berth_db::background_jobs::find(&db.read, id)
        .await
        .unwrap()
        .is_some_and(|d| d.state == "queued")
    {
        assert!(Instant::now() < deadline, "the second run did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gc.terminate();
    let at_stop = berth_db::background_jobs::find(&db.read, id)
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "stopped berth-gc with the second job {} after {} of 30 deletions",
        at_stop.state, at_stop.progress
    );
    assert_ne!(
        at_stop.state, "running",
        "a stopped worker hands its job back"
    );
    if at_stop.state == "queued" {
        assert_eq!(at_stop.lease_until, None, "{at_stop:?}");
    }
    let _gc = stack.start_gc(&GC_ENV).await;
    let done = wait_finished(&stack, pid, &d, &maintainer).await;
    assert_eq!(
        (&done["status"], &done["deleted_count"]),
        (&json!("done"), &json!(30))
    );
    let want: Vec<&String> = all.iter().filter(|t| t.ends_with('0')).collect();
    let (_, list) = tag_list(&stack, &base, &jwt).await;
    assert_eq!(list["tags"], json!(want));
}

/// A short lease, so the restarted process resumes the killed run quickly, and small
/// batches, so the kill lands in the middle of the run.
const GC_ENV: [(&str, &str); 3] = [
    ("BERTH_JOB_POLL_INTERVAL", "100ms"),
    ("BERTH_JOB_LEASE", "2s"),
    ("BERTH_JOB_BATCH_SIZE", "2"),
];

mod bulk_delete_restart {
    use super::*;

    fn options() -> Options {
        Options::default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        if let Some(s) = Stack::start_with(berth_test_support::Backend::Sqlite, options()).await {
            bulk_delete_survives_restart(s).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(s) = Stack::start_with(berth_test_support::Backend::Postgres, options()).await {
            bulk_delete_survives_restart(s).await;
        }
    }
}
