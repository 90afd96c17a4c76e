//! A cleanup policy end to end: set through `PUT /projects/:id`, previewed
//! through `GET …/cleanup_preview` (Reporter+), then run by the scheduler of berth-gc (its
//! library, ticking every second on the same database) once its clock is moved past
//! `next_run_at` (the `BERTH_CLOCK_OFFSET_FILE` test knob, no sleeping for a day). The run
//! deletes exactly the preview's list, and the repository's GitLab status fields show it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use berth_db::entity::{repositories, tags};
use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::images::{push_image, tag_list};
use crate::stack::Stack;
use crate::stack_test;

/// Set each tag's published time `days` ago.
async fn age_tags(stack: &Stack, repository: &str, ages: &[(&str, i64)]) {
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let repo = repositories::Entity::find()
        .filter(repositories::Column::Name.eq(repository))
        .one(&db.read)
        .await
        .unwrap()
        .unwrap();
    for (tag, days) in ages {
        let at = chrono::Utc::now() - chrono::Duration::days(*days);
        let n = tags::Entity::update_many()
            .col_expr(tags::Column::CreatedAt, Expr::value(at))
            .col_expr(tags::Column::UpdatedAt, Expr::value(at))
            .filter(tags::Column::RepositoryId.eq(repo.id))
            .filter(tags::Column::Name.eq(*tag))
            .exec(&db.write)
            .await
            .unwrap();
        assert_eq!(n.rows_affected, 1, "tag {tag}");
    }
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

stack_test!(scheduled_cleanup_deletes_what_the_preview_listed, |stack| {
    let group = stack.create_group("cp", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let name = "cp/app";
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull,push")],
        )
        .await;
    let images: &[(&str, &[&str])] = &[
        ("a", &["latest", "v1"]),
        ("b", &["v2", "v3"]),
        ("c", &["v4"]),
        ("d", &["v5"]),
        ("e", &["v6"]),
        ("f", &["v7"]),
        ("g", &["release-1"]),
    ];
    for (seed, tags) in images {
        push_image(&stack, name, &jwt, seed, &[seed.as_bytes()], tags).await;
    }
    let ages = [
        ("latest", 30),
        ("v1", 30),
        ("v2", 20),
        ("v3", 20),
        ("v4", 15),
        ("v5", 10),
        ("v6", 2),
        ("v7", 3),
        ("release-1", 40),
    ];
    age_tags(&stack, name, &ages).await;
    let before = names(&tag_list(&stack, name, &jwt).await);
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
    assert_eq!(
        repos[0]["expiration_policy_cleanup_status"],
        "cleanup_unscheduled"
    );
    assert_eq!(repos[0]["last_cleanup_deleted_tags_count"], Value::Null);

    // An immutable rule and the policy, through the API.
    stack
        .ok(
            Method::POST,
            &format!("/projects/{pid}/registry/protection/tag/rules"),
            &stack.root_token,
            Some(json!({"tag_name_pattern": "^v3$"})),
            StatusCode::CREATED,
        )
        .await;
    let saved = stack
        .ok(
            Method::PUT,
            &format!("/projects/{pid}"),
            &stack.root_token,
            Some(json!({"container_expiration_policy_attributes": {
                "enabled": true, "cadence": "1d", "keep_n": 1, "older_than": "7d",
                "name_regex": "v.*", "name_regex_keep": "v1",
            }})),
            StatusCode::OK,
        )
        .await;
    let next_run_at = saved["container_expiration_policy"]["next_run_at"].clone();

    // The preview (a Reporter may see it; a stranger may not).
    let reporter = stack.create_user("rep", "reporter-password-123").await;
    stack.add_member("projects", pid, reporter, 20).await;
    let reporter = stack.pat(reporter, &["read_api"]).await;
    let stranger = stack.create_user("stranger", "stranger-password-123").await;
    let stranger = stack.pat(stranger, &["read_api"]).await;
    let preview_path = format!("/projects/{pid}/registry/repositories/{repo_id}/cleanup_preview");
    let preview = stack
        .ok(Method::GET, &preview_path, &reporter, None, StatusCode::OK)
        .await;
    let (status, _) = stack
        .call(Method::GET, &preview_path, &stranger, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(preview["as_of"], next_run_at, "judged as of the next run");
    let doomed = names(&preview["delete"]);
    assert_eq!(
        doomed,
        ["v2", "v4", "v5"].iter().map(|s| (*s).to_owned()).collect()
    );
    let reasons: Vec<(String, Value)> = preview["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t["reason"].clone()))
        .collect();
    let want = [
        ("latest", json!("latest")),
        ("release-1", json!("name_regex_delete_mismatch")),
        ("v1", json!("name_regex_keep")),
        ("v2", Value::Null),
        ("v3", json!("immutable")),
        ("v4", Value::Null),
        ("v5", Value::Null),
        ("v6", json!("keep_n")),
        ("v7", json!("older_than")),
    ];
    let want: Vec<(String, Value)> = want.into_iter().map(|(n, r)| (n.to_owned(), r)).collect();
    assert_eq!(reasons, want);

    // `berth-gc cleanup --dry-run` prints the same verdicts.
    let panics = berth_test_support::PanicGuard::new("berth-gc cleanup");
    let out = std::process::Command::new(crate::support::binary("berth-gc"))
        .args([
            "--no-migrate",
            "cleanup",
            "--dry-run",
            "--project",
            "cp/app",
        ])
        .env_clear()
        .env("BERTH_DATABASE_URL", &stack.db.url)
        .env("RUST_LOG", "warn")
        .env(berth_test_support::panics::PANIC_FILE_ENV, panics.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let cli_doomed: BTreeSet<String> = text
        .lines()
        .filter(|l| l.split('\t').nth(1) == Some("delete"))
        .map(|l| {
            l.split('\t')
                .next()
                .unwrap()
                .trim_start_matches("cp/app:")
                .to_owned()
        })
        .collect();
    assert_eq!(cli_doomed, doomed, "{text}");
    assert!(text.contains("cp/app:v3\tkeep\timmutable"), "{text}");

    // berth-gc's scheduler, ticking every second; its clock is moved by a file.
    let clock_file = stack.logs.path().join("clock-offset");
    std::fs::write(&clock_file, "").unwrap();
    let cfg = berth_gc::Config {
        database_url: stack.db.url.as_str().into(),
        cleanup_schedule: "* * * * * *".into(),
        clock_offset_file: clock_file.display().to_string(),
        gc_review_delay: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(berth_gc::cleanup::scheduler(cfg, db, stop));

    // Not due yet: a few ticks do nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(names(&tag_list(&stack, name, &jwt).await), before);

    // Two days later the run is due; wait for it to finish.
    std::fs::write(&clock_file, "2d").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let repo = loop {
        let r = stack
            .ok(
                Method::GET,
                &format!("/registry/repositories/{repo_id}"),
                &stack.root_token,
                None,
                StatusCode::OK,
            )
            .await;
        if r["expiration_policy_cleanup_status"] == "cleanup_unscheduled"
            && r["last_cleanup_deleted_tags_count"] != Value::Null
        {
            break r;
        }
        assert!(Instant::now() < deadline, "cleanup did not run: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop_tx.send(true).unwrap();
    scheduler.await.unwrap();

    let after = names(&tag_list(&stack, name, &jwt).await);
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(
        deleted, doomed,
        "the run deleted exactly the preview's list"
    );
    assert_eq!(repo["last_cleanup_deleted_tags_count"], json!(doomed.len()));
    assert_eq!(repo["expiration_policy_started_at"], preview["as_of"]);
    assert_eq!(repo["cleanup_policy_started_at"], preview["as_of"]);
    // v3 shares v2's manifest and stays pullable.
    let (status, _) = crate::images::pull(&stack, name, &jwt, "v3").await;
    assert_eq!(status, StatusCode::OK);
    // The schedule moved on by the cadence from the (moved) clock.
    let project = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}"),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    let next = project["container_expiration_policy"]["next_run_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(next.as_str() > next_run_at.as_str().unwrap(), "{next}");
});
