//! Cleanup-policy settings through `PUT /projects/:id` (GitLab's
//! `container_expiration_policy_attributes`, read back as `container_expiration_policy`):
//! GitLab's defaults for a new project, a Maintainer's update read back exactly with
//! `next_run_at` one cadence from now, partial updates from form bodies, invalid values
//! refused with nothing changed, Developers refused, and the policy in project listings.

use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stack::Stack;
use crate::stack_test;

async fn policy(stack: &Stack, pid: i64, token: &str) -> Value {
    let project = stack
        .ok(
            Method::GET,
            &format!("/projects/{pid}"),
            token,
            None,
            StatusCode::OK,
        )
        .await;
    project["container_expiration_policy"].clone()
}

fn next_run(p: &Value) -> DateTime<Utc> {
    let raw = p["next_run_at"].as_str().expect("next_run_at");
    // GitLab's API time: RFC 3339 with milliseconds, UTC.
    assert_eq!(raw.len(), "2026-01-01T00:00:00.000Z".len(), "{raw}");
    DateTime::parse_from_rfc3339(raw)
        .unwrap()
        .with_timezone(&Utc)
}

stack_test!(expiration_policy_settings, |stack| {
    let group = stack.create_group("cleanup", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let maintainer = stack.create_user("keeper", "keeper-password-123").await;
    stack.add_member("projects", pid, maintainer, 40).await;
    let keeper = stack.pat(maintainer, &["api"]).await;
    let developer = stack.create_user("dev", "dev-password-123").await;
    stack.add_member("projects", pid, developer, 30).await;
    let dev = stack.pat(developer, &["api"]).await;
    let path = format!("/projects/{pid}");

    // GitLab's defaults, in the create answer and on GET.
    let defaults = json!({
        "cadence": "1d", "enabled": false, "keep_n": 10, "older_than": "90d",
        "name_regex": ".*", "name_regex_keep": null, "next_run_at": null,
    });
    assert_eq!(project["container_expiration_policy"], defaults);
    assert_eq!(policy(&stack, pid, &dev).await, defaults);

    // A Maintainer turns it on.
    let before = Utc::now();
    let answer = stack
        .ok(
            Method::PUT,
            &path,
            &keeper,
            Some(json!({"container_expiration_policy_attributes": {
                "enabled": true, "cadence": "7d", "keep_n": 5, "older_than": "14d",
                "name_regex": ".*", "name_regex_keep": "^release",
            }})),
            StatusCode::OK,
        )
        .await;
    let after = Utc::now();
    let set = answer["container_expiration_policy"].clone();
    let mut want = json!({
        "cadence": "7d", "enabled": true, "keep_n": 5, "older_than": "14d",
        "name_regex": ".*", "name_regex_keep": "^release",
    });
    want["next_run_at"] = set["next_run_at"].clone();
    assert_eq!(set, want);
    let next = next_run(&set);
    assert!(
        next >= before + Duration::days(7) - Duration::seconds(1)
            && next <= after + Duration::days(7) + Duration::seconds(1),
        "next_run_at {next} is about now + 7d"
    );
    assert_eq!(policy(&stack, pid, &dev).await, set, "read back exactly");

    // Invalid values: 400 with GitLab's message, nothing changed (the name either).
    let invalid = [
        (
            json!({"cadence": "2d"}),
            "container_expiration_policy.cadence is not included in the list",
        ),
        (
            json!({"keep_n": 3}),
            "container_expiration_policy.keep_n is not included in the list",
        ),
        (
            json!({"older_than": "1d"}),
            "container_expiration_policy.older_than is not included in the list",
        ),
        (
            json!({"name_regex": "v[0-9"}),
            "container_expiration_policy.name_regex not valid RE2 syntax",
        ),
        (
            json!({"name_regex_keep": "(a)\\1"}),
            "container_expiration_policy.name_regex_keep not valid RE2 syntax",
        ),
        (
            json!({"name_regex": null}),
            "container_expiration_policy.name_regex can't be blank",
        ),
        (
            json!({"keep_n": "five"}),
            "container_expiration_policy_attributes[keep_n] is invalid",
        ),
    ];
    for (attrs, message) in invalid {
        let (status, body) = stack
            .call(
                Method::PUT,
                &path,
                &keeper,
                Some(json!({"name": "renamed", "container_expiration_policy_attributes": attrs})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{attrs}: {body}");
        assert_eq!(body["message"], message, "{attrs}");
    }
    let unchanged = stack
        .ok(Method::GET, &path, &dev, None, StatusCode::OK)
        .await;
    assert_eq!(unchanged["container_expiration_policy"], set);
    assert_eq!(unchanged["name"], "app");

    // A Developer may not edit it.
    let (status, _) = stack
        .call(
            Method::PUT,
            &path,
            &dev,
            Some(json!({"container_expiration_policy_attributes": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(policy(&stack, pid, &dev).await, set);

    // A partial update from a form body (python-gitlab's hash keys) merges; the schedule
    // stays while the cadence does.
    let r = stack
        .api(Method::PUT, &path, &keeper)
        .form(&[
            ("container_expiration_policy_attributes[keep_n]", "25"),
            (
                "container_expiration_policy_attributes[name_regex_keep]",
                "",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let merged = r.json::<Value>().await.unwrap()["container_expiration_policy"].clone();
    let mut want = set.clone();
    want["keep_n"] = json!(25);
    want["name_regex_keep"] = Value::Null;
    assert_eq!(merged, want);

    // Changing the cadence reschedules from now.
    let before = Utc::now();
    let answer = stack
        .ok(
            Method::PUT,
            &path,
            &keeper,
            Some(json!({"container_expiration_policy_attributes": {"cadence": "1month"}})),
            StatusCode::OK,
        )
        .await;
    let monthly = next_run(&answer["container_expiration_policy"]);
    assert!(monthly >= before + Duration::days(28), "{monthly}");
    assert!(monthly <= Utc::now() + Duration::days(31), "{monthly}");

    // Turning it off clears the schedule; the settings stay.
    let answer = stack
        .ok(
            Method::PUT,
            &path,
            &keeper,
            Some(json!({"container_expiration_policy_attributes": {"enabled": false}})),
            StatusCode::OK,
        )
        .await;
    let off = &answer["container_expiration_policy"];
    assert_eq!(off["enabled"], false);
    assert_eq!(off["next_run_at"], Value::Null);
    assert_eq!(off["cadence"], "1month");
    assert_eq!(off["keep_n"], 25);

    // Listings carry each project's policy (stored or default).
    stack
        .create_project(group["id"].as_i64().unwrap(), "other", "private", "enabled")
        .await;
    let list = stack
        .ok(
            Method::GET,
            &format!("/groups/{}/projects", group["id"]),
            &stack.root_token,
            None,
            StatusCode::OK,
        )
        .await;
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        let want = if item["id"] == pid {
            off.clone()
        } else {
            defaults.clone()
        };
        assert_eq!(
            item["container_expiration_policy"], want,
            "{}",
            item["path"]
        );
    }
});
