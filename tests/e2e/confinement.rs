//! Credentials stay inside their scope (issue 12): a project or group access token's bot
//! acts only in its own project or group (a project bot once created a group, became its
//! Owner and minted a group token that outlived its own revocation); access tokens made
//! through the API always expire, within the instance's maximum lifetime, and rotation
//! cannot remove the expiry. Registry tokens bound to their project: [`crate::token_binding`].

use chrono::{NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::matrix::jwt_payload;
use crate::stack::Stack;
use crate::stack_test;

/// A bot token on `/{source}/{id}` (`projects` or `groups`) made by root with `level` and
/// the `api` scope; (bot user id, token).
async fn bot_token(stack: &Stack, source: &str, id: i64, level: i32) -> (i64, String) {
    let v = stack
        .ok(
            Method::POST,
            &format!("/{source}/{id}/access_tokens"),
            &stack.root_token,
            Some(json!({"name": "bot", "scopes": ["api"], "access_level": level})),
            StatusCode::CREATED,
        )
        .await;
    (
        v["user_id"].as_i64().unwrap(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// A membership written straight into the database: one a bot acquired before bots were
/// confined (the group it created), or by any other way round the API.
async fn stray_membership(stack: &Stack, source_type: &str, source_id: i64, user_id: i64) {
    use berth_db::entity::members;
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    members::ActiveModel {
        source_type: Set(source_type.into()),
        source_id: Set(source_id),
        user_id: Set(user_id),
        access_level: Set(50),
        expires_at: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&db.write)
    .await
    .unwrap();
}

async fn status(stack: &Stack, method: Method, path: &str, token: &str, body: Value) -> StatusCode {
    stack.call(method, path, token, Some(body)).await.0
}

stack_test!(project_bots_stay_in_their_project, |stack| {
    let g = stack.create_group("g", None).await["id"].as_i64().unwrap();
    let app = stack.create_project(g, "app", "private", "enabled").await["id"]
        .as_i64()
        .unwrap();
    let h = stack.create_group("h", None).await["id"].as_i64().unwrap();
    let lib = stack.create_project(h, "lib", "private", "enabled").await["id"]
        .as_i64()
        .unwrap();
    let (bot, token) = bot_token(&stack, "projects", app, 50).await;

    // The reported escape: a project bot creating a group of its own (it would become its
    // Owner and could mint a group token there).
    let created = status(
        &stack,
        Method::POST,
        "/groups",
        &token,
        json!({"name": "escape", "path": "escape"}),
    )
    .await;
    assert_eq!(created, StatusCode::FORBIDDEN, "a bot creates no group");

    // Whatever membership it holds elsewhere grants it nothing there.
    stray_membership(&stack, "namespace", h, bot).await;
    stray_membership(&stack, "project", lib, bot).await;
    let attempts = [
        (
            Method::POST,
            "/projects".to_owned(),
            json!({"path": "x", "namespace_id": h}),
        ),
        (
            Method::POST,
            "/groups".to_owned(),
            json!({"name": "sub", "path": "sub", "parent_id": h}),
        ),
        (
            Method::POST,
            format!("/groups/{h}/access_tokens"),
            json!({"name": "t", "scopes": ["api"], "access_level": 50}),
        ),
        (
            Method::POST,
            format!("/projects/{lib}/access_tokens"),
            json!({"name": "t", "scopes": ["api"], "access_level": 50}),
        ),
        (
            Method::POST,
            format!("/projects/{lib}/deploy_tokens"),
            json!({"name": "t", "scopes": ["read_registry"]}),
        ),
        (
            Method::POST,
            format!("/groups/{h}/members"),
            json!({"user_id": 1, "access_level": 50}),
        ),
        (
            Method::PUT,
            format!("/projects/{lib}"),
            json!({"name": "mine"}),
        ),
        (Method::DELETE, format!("/groups/{h}"), json!({})),
    ];
    for (method, path, body) in attempts {
        let got = status(&stack, method.clone(), &path, &token, body).await;
        assert!(
            got == StatusCode::FORBIDDEN || got == StatusCode::NOT_FOUND,
            "{method} {path}: {got}"
        );
    }
    // Nor does it reach that registry through `/jwt/auth`.
    let jwt = stack
        .registry_token(Some(("bot", &token)), &["repository:h/lib:pull,push"])
        .await;
    assert_eq!(jwt_payload(&jwt)["access"], json!([]), "no access outside");
    // And it cannot be made a member elsewhere through the API.
    let added = status(
        &stack,
        Method::POST,
        &format!("/projects/{lib}/members"),
        &stack.root_token,
        json!({"user_id": bot, "access_level": 30}),
    )
    .await;
    assert_eq!(added, StatusCode::BAD_REQUEST);

    // At home it keeps its role: settings, and tokens up to its own level.
    stack
        .ok(
            Method::PUT,
            &format!("/projects/{app}"),
            &token,
            Some(json!({"name": "App"})),
            StatusCode::OK,
        )
        .await;
    stack
        .ok(
            Method::POST,
            &format!("/projects/{app}/access_tokens"),
            &token,
            Some(json!({"name": "t", "scopes": ["read_registry"], "access_level": 30})),
            StatusCode::CREATED,
        )
        .await;
    let jwt = stack
        .registry_token(Some(("bot", &token)), &["repository:g/app:pull,push"])
        .await;
    assert_eq!(
        jwt_payload(&jwt)["access"][0]["actions"],
        json!(["pull", "push"])
    );
});

stack_test!(group_bots_stay_below_their_group, |stack| {
    let g = stack.create_group("g", None).await["id"].as_i64().unwrap();
    let sub = stack.create_group("sub", Some(g)).await["id"]
        .as_i64()
        .unwrap();
    let h = stack.create_group("h", None).await["id"].as_i64().unwrap();
    let (bot, token) = bot_token(&stack, "groups", g, 50).await;

    // Below its group it acts with its role.
    stack
        .ok(
            Method::POST,
            "/groups",
            &token,
            Some(json!({"name": "team", "path": "team", "parent_id": g})),
            StatusCode::CREATED,
        )
        .await;
    stack
        .ok(
            Method::POST,
            "/projects",
            &token,
            Some(json!({"path": "svc", "namespace_id": sub})),
            StatusCode::CREATED,
        )
        .await;
    // Outside it: no top-level group, nothing in another group even with a membership there.
    let top = status(
        &stack,
        Method::POST,
        "/groups",
        &token,
        json!({"name": "escape", "path": "escape"}),
    )
    .await;
    assert_eq!(top, StatusCode::FORBIDDEN);
    stray_membership(&stack, "namespace", h, bot).await;
    for (path, body) in [
        (
            "/projects".to_owned(),
            json!({"path": "x", "namespace_id": h}),
        ),
        (
            format!("/groups/{h}/access_tokens"),
            json!({"name": "t", "scopes": ["api"], "access_level": 50}),
        ),
    ] {
        let got = status(&stack, Method::POST, &path, &token, body).await;
        assert_eq!(got, StatusCode::FORBIDDEN, "{path}");
    }
});

/// The expiry date of a token JSON.
fn expiry(v: &Value) -> Option<NaiveDate> {
    v["expires_at"]
        .as_str()
        .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap())
}

/// The dates `days` from today, taken around a request (the date may turn meanwhile).
fn days_from_today(days: i64) -> [NaiveDate; 2] {
    let now = Utc::now();
    [
        (now + chrono::Duration::days(days)).date_naive(),
        (now + chrono::Duration::days(days) + chrono::Duration::minutes(5)).date_naive(),
    ]
}

stack_test!(access_tokens_expire_within_the_maximum, |stack| {
    let dev = stack.create_user("dev", "dev-password-123").await;
    let g = stack.create_group("g", None).await["id"].as_i64().unwrap();
    let app = stack.create_project(g, "app", "private", "enabled").await["id"]
        .as_i64()
        .unwrap();
    let pats = format!("/users/{dev}/personal_access_tokens");
    let root = stack.root_token.clone();
    let create =
        async |path: String, body: Value| stack.call(Method::POST, &path, &root, Some(body)).await;

    // Without an expiry: the maximum (365 days by default), as GitLab.
    let (s, v) = create(pats.clone(), json!({"name": "a", "scopes": ["api"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(days_from_today(365).contains(&expiry(&v).unwrap()), "{v}");
    let (s, v) = create(
        format!("/projects/{app}/access_tokens"),
        json!({"name": "b", "scopes": ["api"], "access_level": 30}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(days_from_today(365).contains(&expiry(&v).unwrap()), "{v}");
    // Up to the maximum is fine; beyond it is a 400, for every kind of access token.
    let limit = days_from_today(365)[0].to_string();
    let beyond = days_from_today(366)[1].to_string();
    let (s, _) = create(
        pats.clone(),
        json!({"name": "c", "scopes": ["api"], "expires_at": limit}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    for path in [
        pats.clone(),
        format!("/projects/{app}/access_tokens"),
        format!("/groups/{g}/access_tokens"),
    ] {
        let (s, v) = create(
            path.clone(),
            json!({"name": "d", "scopes": ["api"], "expires_at": beyond}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
    }

    // Rotation keeps an expiry: a week by default, and `null` cannot remove it.
    let (_, v) = create(pats.clone(), json!({"name": "e", "scopes": ["api"]})).await;
    let id = v["id"].as_i64().unwrap();
    let rotated = stack
        .ok(
            Method::POST,
            &format!("/personal_access_tokens/{id}/rotate"),
            &root,
            Some(json!({"expires_at": null})),
            StatusCode::OK,
        )
        .await;
    let at = expiry(&rotated).expect("a rotated token still expires");
    assert!(at <= days_from_today(365)[1], "{rotated}");
    let id = rotated["id"].as_i64().unwrap();
    let rotated = stack
        .ok(
            Method::POST,
            &format!("/personal_access_tokens/{id}/rotate"),
            &root,
            None,
            StatusCode::OK,
        )
        .await;
    assert!(days_from_today(7).contains(&expiry(&rotated).unwrap()));
    let id = rotated["id"].as_i64().unwrap();
    let (s, _) = stack
        .call(
            Method::POST,
            &format!("/personal_access_tokens/{id}/rotate"),
            &root,
            Some(json!({"expires_at": beyond})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
});
