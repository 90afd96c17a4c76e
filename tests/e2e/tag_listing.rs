//! Sorting and filtering a repository's tags through the management API (`order_by`
//! `name|created_at|last_pulled_at`, `sort`, filters `name`, `created_after`/`_before`,
//! `pulled_after`/`_before`): offset pages count the filtered set in `X-Total`, and keyset
//! pages (`pagination=keyset`) walk every order, ties and never-pulled tags included, to
//! the same sequence the single page shows.

use berth_db::entity::tags;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::images::push_image;
use crate::stack::{Stack, urlencode};
use crate::stack_test;

/// `GET` an absolute or `/api/v4`-relative URL as root: status, `X-Total`, `Link` and names.
async fn get(
    stack: &Stack,
    url: &str,
) -> (StatusCode, Option<String>, Option<String>, Vec<String>) {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("{}/api/v4{url}", stack.auth.url)
    };
    let r = stack
        .http
        .get(&url)
        .header("private-token", &stack.root_token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (total, link) = (header("x-total"), header("link"));
    let body: Value = r.json().await.unwrap_or_default();
    let names = body
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (status, total, link, names)
}

/// The `rel="next"` URL of a `Link` header.
fn next(link: Option<&str>) -> Option<String> {
    let link = link?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// Every name a keyset walk from `first` yields, following `next` links.
async fn walk(stack: &Stack, first: &str) -> Vec<String> {
    let (status, total, mut link, mut names) = get(stack, first).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(total.is_none(), "keyset pages carry no X-Total");
    let mut pages = 1;
    while let Some(url) = next(link.as_deref()) {
        let (status, _, l, more) = get(stack, &url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        assert!(
            !more.is_empty(),
            "a next link leads to a non-empty page: {url}"
        );
        names.extend(more);
        link = l;
        pages += 1;
        assert!(pages < 20, "runaway walk from {first}");
    }
    names
}

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(minutes)
}

stack_test!(tag_listing_sorts_filters_and_pages, |stack| {
    let group = stack.create_group("tl", None).await;
    let project = stack
        .create_project(group["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let pid = project["id"].as_i64().unwrap();
    let name = "tl/app";
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull,push")],
        )
        .await;
    // (tag, tagged at minute, last pulled at minute): a tie on each time, two never pulled.
    let facts: [(&str, i64, Option<i64>); 6] = [
        ("alpha", 3, Some(2)),
        ("beta", 1, None),
        ("mid-1", 2, None),
        ("mid-2", 2, Some(1)),
        ("omega", 4, Some(3)),
        ("zeta", 5, Some(1)),
    ];
    let all: Vec<&str> = facts.iter().map(|f| f.0).collect();
    push_image(&stack, name, &jwt, "one", &[b"layer-one"], &all).await;
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    for (tag, created, pulled) in facts {
        tags::Entity::update_many()
            .col_expr(tags::Column::UpdatedAt, Expr::value(at(created)))
            .col_expr(tags::Column::LastPulledAt, Expr::value(pulled.map(at)))
            .filter(tags::Column::Name.eq(tag))
            .exec(&db.write)
            .await
            .unwrap();
    }
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
    let tags_path = format!("/projects/{pid}/registry/repositories/{repo_id}/tags");

    let orders: [(&str, &[&str]); 6] = [
        (
            "order_by=name",
            &["alpha", "beta", "mid-1", "mid-2", "omega", "zeta"],
        ),
        (
            "order_by=name&sort=desc",
            &["zeta", "omega", "mid-2", "mid-1", "beta", "alpha"],
        ),
        (
            "order_by=created_at",
            &["beta", "mid-1", "mid-2", "alpha", "omega", "zeta"],
        ),
        (
            "order_by=created_at&sort=desc",
            &["zeta", "omega", "alpha", "mid-2", "mid-1", "beta"],
        ),
        (
            "order_by=last_pulled_at",
            &["beta", "mid-1", "mid-2", "zeta", "alpha", "omega"],
        ),
        (
            "order_by=last_pulled_at&sort=desc",
            &["omega", "alpha", "zeta", "mid-2", "mid-1", "beta"],
        ),
    ];
    for (q, expected) in orders {
        let (status, total, _, names) = get(&stack, &format!("{tags_path}?{q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert_eq!(names, expected, "{q}");
        assert_eq!(total.as_deref(), Some("6"), "{q}");
        // Offset pages split the same sequence.
        let (_, _, _, page2) = get(&stack, &format!("{tags_path}?{q}&per_page=4&page=2")).await;
        assert_eq!(page2, expected[4..], "{q} page 2");
        // Keyset walks it page by page, across ties and never-pulled tags.
        for per_page in [1, 2, 4] {
            let walked = walk(
                &stack,
                &format!("{tags_path}?{q}&pagination=keyset&per_page={per_page}"),
            )
            .await;
            assert_eq!(walked, expected, "{q} keyset per_page={per_page}");
        }
    }

    // Filters: X-Total counts what matches; keyset pages honour them too.
    let after = urlencode(&at(2).to_rfc3339());
    let before = urlencode(&at(2).to_rfc3339());
    let filters: [(String, &[&str]); 6] = [
        ("name=MID".into(), &["mid-1", "mid-2"]),
        (
            format!("created_after={after}"),
            &["alpha", "mid-1", "mid-2", "omega", "zeta"],
        ),
        (format!("created_before={before}"), &["beta"]),
        (format!("pulled_after={after}"), &["alpha", "omega"]),
        (format!("pulled_before={before}"), &["mid-2", "zeta"]),
        (
            format!("name=a&created_after={after}&order_by=created_at&sort=desc"),
            &["zeta", "omega", "alpha"],
        ),
    ];
    for (q, expected) in filters {
        let (status, total, _, names) = get(&stack, &format!("{tags_path}?{q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert_eq!(names, expected, "{q}");
        assert_eq!(total, Some(expected.len().to_string()), "{q}");
        let walked = walk(
            &stack,
            &format!("{tags_path}?{q}&pagination=keyset&per_page=1"),
        )
        .await;
        assert_eq!(walked, expected, "{q} keyset");
    }
    let (_, total, link, names) = get(&stack, &format!("{tags_path}?name=m&per_page=2")).await;
    assert_eq!(names, ["mid-1", "mid-2"]);
    assert_eq!(total.as_deref(), Some("3"));
    assert!(link.unwrap_or_default().contains("name=m"));

    // Bad values are 400 with GitLab's message.
    for q in [
        "order_by=size",
        "sort=up",
        "created_after=yesterday",
        "order_by=created_at&pagination=keyset&last=not-a-marker",
    ] {
        let (status, body) = stack
            .call(
                Method::GET,
                &format!("{tags_path}?{q}"),
                &stack.root_token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(body["message"].is_string(), "{q}: {body}");
    }
});
