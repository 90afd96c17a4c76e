//! The visibility matrix (who may pull), cell by cell, against the real services: 3 project
//! visibilities × 3 registry access levels × {anonymous, signed-in non-member, Guest,
//! Reporter, Developer}, each decided twice — by the `access` `/jwt/auth` puts in the JWT and
//! by what the registry then does with that token. Then push and registry `delete` by role
//! and token scope (Developer+ pushes; `delete` needs Maintainer and an `api` PAT; admins get
//! everything but `disabled`), and bad credentials answering `401 UNAUTHORIZED`.
//!
//! The expected results are literal tables below, written from the product rules, not
//! computed by the rules under test.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stack::Stack;
use crate::stack_test;
use crate::support::image_manifest;

/// The JSON payload of a JWT (the middle part, base64url).
pub(crate) fn jwt_payload(token: &str) -> Value {
    let seg = token.split('.').nth(1).expect("jwt payload segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url")).expect("json")
}

/// Push a tiny image (config + one layer) to `repo:tag` over HTTP with a registry token that
/// grants pull and push there; returns (manifest digest, layer digest).
pub(crate) async fn push_tiny_image(
    stack: &Stack,
    token: &str,
    repo: &str,
    tag: &str,
    seed: &str,
) -> (Digest, Digest) {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
    let layer = format!("layer of {seed}");
    let mut digests = Vec::new();
    for data in [config.as_bytes(), layer.as_bytes()] {
        let digest = Digest::sha256(data);
        let r = stack
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={digest}",
                stack.registry.url
            ))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("push blob");
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "blob into {repo}: {:?}",
            r.text().await
        );
        digests.push(digest);
    }
    let manifest = image_manifest(
        (&digests[0], config.len()),
        &[(&digests[1], layer.len())],
        json!({}),
    );
    let r = stack
        .http
        .put(format!("{}/v2/{repo}/manifests/{tag}", stack.registry.url))
        .bearer_auth(token)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .expect("put manifest");
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "manifest {repo}:{tag}: {:?}",
        r.text().await
    );
    (Digest::sha256(&manifest), digests.remove(1))
}

/// A registry request, with the bearer token when there is one; (status, `errors[0].code`).
pub(crate) async fn registry_call(
    stack: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut req = stack
        .http
        .request(method, format!("{}{path}", stack.registry.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("registry request");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

const VISIBILITIES: [&str; 3] = ["public", "internal", "private"];
const LEVELS: [&str; 3] = ["enabled", "private", "disabled"];

/// Pull, as the product rules state it: (visibility, registry access level, [anonymous, signed-in
/// non-member, Guest, Reporter, Developer]).
#[rustfmt::skip]
const PULL: [(&str, &str, [bool; 5]); 9] = [
    //                           anon   non-m  guest  rep    dev
    ("public",   "enabled",  [true,  true,  true,  true,  true ]),
    ("public",   "private",  [false, false, false, true,  true ]),
    ("public",   "disabled", [false, false, false, false, false]),
    ("internal", "enabled",  [false, true,  true,  true,  true ]),
    ("internal", "private",  [false, false, false, true,  true ]),
    ("internal", "disabled", [false, false, false, false, false]),
    ("private",  "enabled",  [false, false, false, true,  true ]),
    ("private",  "private",  [false, false, false, true,  true ]),
    ("private",  "disabled", [false, false, false, false, false]),
];

/// Who asks, and with what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    NonMember,
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Admin,
}

/// The PAT a signed-in caller uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pat {
    /// None (anonymous).
    No,
    /// `read_registry,write_registry`.
    Rw,
    /// `api`.
    Api,
}

/// Every caller of the push/delete table with what they may do on a project whose registry
/// is not `disabled`, literally: (who, PAT, pull column of [`PULL`] or `None` = always pulls,
/// push, delete). On `disabled` nobody gets anything.
#[rustfmt::skip]
const CALLERS: [(Who, Pat, Option<usize>, bool, bool); 13] = [
    // who              PAT        pull     push   delete
    (Who::Anonymous,  Pat::No,  Some(0), false, false),
    (Who::NonMember,  Pat::Rw,  Some(1), false, false),
    (Who::Guest,      Pat::Rw,  Some(2), false, false),
    (Who::Reporter,   Pat::Rw,  Some(3), false, false),
    (Who::Reporter,   Pat::Api, Some(3), false, false),
    (Who::Developer,  Pat::Rw,  Some(4), true,  false),
    (Who::Developer,  Pat::Api, Some(4), true,  false),
    (Who::Maintainer, Pat::Rw,  None,    true,  false),
    (Who::Maintainer, Pat::Api, None,    true,  true ),
    (Who::Admin,      Pat::Rw,  None,    true,  false),
    (Who::Admin,      Pat::Api, None,    true,  true ),
    (Who::NonMember,  Pat::Api, Some(1), false, false),
    (Who::Guest,      Pat::Api, Some(2), false, false),
];

/// A project of the matrix.
struct Cell {
    vis: &'static str,
    level: &'static str,
    id: i64,
    path: String,
}

/// Expected actions, in the order requested (`pull,push,delete`).
fn expected_actions(
    cell: &Cell,
    pull_row: [bool; 5],
    caller: (Option<usize>, bool, bool),
) -> Vec<&'static str> {
    if cell.level == "disabled" {
        return Vec::new();
    }
    let (pull_col, push, delete) = caller;
    let pull = pull_col.is_none_or(|c| pull_row[c]);
    let mut out = Vec::new();
    if pull {
        out.push("pull");
    }
    if push {
        out.push("push");
    }
    if delete {
        out.push("delete");
    }
    out
}

const NO_SUCH_MANIFEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

stack_test!(matrix_pull_push_delete_cell_by_cell, |stack| {
    let started = std::time::Instant::now();
    let group = stack.create_group("m", None).await;
    let gid = group["id"].as_i64().unwrap();
    let mut cells = Vec::new();
    for vis in VISIBILITIES {
        for level in LEVELS {
            let p = stack
                .create_project(gid, &format!("{vis}-{level}"), vis, level)
                .await;
            let path = p["path_with_namespace"].as_str().unwrap().to_owned();
            assert_eq!(path, format!("m/{vis}-{level}"));
            // The API stored what was asked.
            assert_eq!(p["visibility"], vis, "{p}");
            assert_eq!(p["container_registry_access_level"], level, "{p}");
            cells.push(Cell {
                vis,
                level,
                id: p["id"].as_i64().unwrap(),
                path,
            });
        }
    }

    // Users: one per role, a member of every project with that role; one non-member.
    let mut pats: Vec<(Who, Pat, String, String)> = Vec::new();
    for (who, name, level) in [
        (Who::NonMember, "outsider", None),
        (Who::Guest, "guest", Some(10)),
        (Who::Reporter, "reporter", Some(20)),
        (Who::Developer, "developer", Some(30)),
        (Who::Maintainer, "maintainer", Some(40)),
    ] {
        let uid = stack.create_user(name, &format!("{name}-password-1")).await;
        if let Some(level) = level {
            for cell in &cells {
                stack.add_member("projects", cell.id, uid, level).await;
            }
        }
        let rw = stack.pat(uid, &["read_registry", "write_registry"]).await;
        let api = stack.pat(uid, &["api"]).await;
        pats.push((who, Pat::Rw, name.to_owned(), rw));
        pats.push((who, Pat::Api, name.to_owned(), api));
    }
    // The instance admin: root, with an `api` PAT (the stack's) and a registry-only one.
    let root_rw = crate::stack::cli_token(&stack.db.url, "root", "read_registry,write_registry");
    let root_api = crate::stack::cli_token(&stack.db.url, "root", "api");
    pats.push((Who::Admin, Pat::Rw, "root".into(), root_rw));
    pats.push((Who::Admin, Pat::Api, "root".into(), root_api.clone()));

    // One image in every project whose registry works (root may push there).
    for cell in cells.iter().filter(|c| c.level != "disabled") {
        let token = stack
            .registry_token(
                Some(("root", &root_api)),
                &[&format!("repository:{}:pull,push", cell.path)],
            )
            .await;
        push_tiny_image(&stack, &token, &cell.path, "v1", &cell.path).await;
    }

    let mut checked = 0;
    for cell in &cells {
        let row = PULL
            .iter()
            .find(|(v, l, _)| *v == cell.vis && *l == cell.level)
            .expect("every project has a row")
            .2;
        for (who, pat, pull_col, push, delete) in CALLERS {
            let creds = pats
                .iter()
                .find(|(w, p, _, _)| *w == who && *p == pat)
                .map(|(_, _, user, secret)| (user.as_str(), secret.as_str()));
            let what = format!(
                "cell {}/{} ({}), caller {who:?} with PAT {pat:?}",
                cell.vis, cell.level, cell.path
            );
            let want = expected_actions(cell, row, (pull_col, push, delete));
            let scope = format!("repository:{}:pull,push,delete", cell.path);
            let r = stack.jwt(creds, &[&scope]).await;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let token = if who == Who::Anonymous && want.is_empty() {
                // GitLab: an anonymous request granted nothing is refused outright.
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
                assert_eq!(body["errors"][0]["code"], "DENIED", "{what}: {body}");
                None
            } else {
                assert_eq!(status, StatusCode::OK, "{what}: {body}");
                let token = body["token"].as_str().expect("token").to_owned();
                let access = jwt_payload(&token)["access"].clone();
                if want.is_empty() {
                    assert_eq!(access, json!([]), "{what}: nothing is granted");
                } else {
                    let access = access.as_array().expect("access array");
                    assert_eq!(access.len(), 1, "{what}: {access:?}");
                    let a = &access[0];
                    assert_eq!(a["type"], "repository", "{what}");
                    assert_eq!(a["name"], cell.path.as_str(), "{what}");
                    assert_eq!(a["actions"], json!(want), "{what}: granted actions");
                    assert_eq!(a["meta"]["project_path"], cell.path.as_str(), "{what}");
                    assert_eq!(a["meta"]["project_id"], cell.id, "{what}");
                    assert_eq!(a["meta"]["root_namespace_id"], gid, "{what}");
                }
                Some(token)
            };
            let token = token.as_deref();
            let allowed = |a: &str| want.contains(&a);

            // Pull: the tag list of the project's repository.
            let (status, code) = registry_call(
                &stack,
                Method::GET,
                &format!("/v2/{}/tags/list", cell.path),
                token,
            )
            .await;
            if allowed("pull") {
                assert_eq!(status, StatusCode::OK, "{what}: pull at the registry");
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
                    "{what}: the registry refuses the pull"
                );
            }
            // Push: starting an upload session.
            let (status, code) = registry_call(
                &stack,
                Method::POST,
                &format!("/v2/{}/blobs/uploads/", cell.path),
                token,
            )
            .await;
            if allowed("push") && allowed("pull") {
                assert_eq!(status, StatusCode::ACCEPTED, "{what}: push at the registry");
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
                    "{what}: the registry refuses the push"
                );
            }
            // Delete: a manifest that does not exist — allowed answers MANIFEST_UNKNOWN.
            let (status, code) = registry_call(
                &stack,
                Method::DELETE,
                &format!("/v2/{}/manifests/{NO_SUCH_MANIFEST}", cell.path),
                token,
            )
            .await;
            if allowed("delete") {
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                    "{what}: delete at the registry"
                );
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
                    "{what}: the registry refuses the delete"
                );
            }
            // An allowed pull of an empty repository of the project: 404 NAME_UNKNOWN.
            if allowed("pull") {
                let empty = format!("{}/empty", cell.path);
                let t = stack
                    .registry_token(creds, &[&format!("repository:{empty}:pull")])
                    .await;
                let (status, code) = registry_call(
                    &stack,
                    Method::GET,
                    &format!("/v2/{empty}/tags/list"),
                    Some(&t),
                )
                .await;
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
                    "{what}: allowed pull of an empty repository"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9 * CALLERS.len());
    eprintln!(
        "matrix: {checked} cells checked in {:.1?}",
        started.elapsed()
    );
});

stack_test!(matrix_tag_list_content_and_bad_credentials, |stack| {
    let group = stack.create_group("m", None).await;
    let gid = group["id"].as_i64().unwrap();
    let p = stack.create_project(gid, "app", "public", "enabled").await;
    let uid = stack.create_user("dev", "dev-password-123").await;
    stack
        .add_member("projects", p["id"].as_i64().unwrap(), uid, 30)
        .await;
    let pat = stack.pat(uid, &["read_registry", "write_registry"]).await;
    let token = stack
        .registry_token(Some(("dev", &pat)), &["repository:m/app:pull,push"])
        .await;
    let (digest, _) = push_tiny_image(&stack, &token, "m/app", "v1", "x").await;
    // Anonymous pulls a public project's image: the tag list and the manifest by digest.
    let anon = stack.registry_token(None, &["repository:m/app:pull"]).await;
    let r = stack
        .http
        .get(format!("{}/v2/m/app/tags/list", stack.registry.url))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": "m/app", "tags": ["v1"]})
    );
    let (status, _) = registry_call(
        &stack,
        Method::GET,
        &format!("/v2/m/app/manifests/{digest}"),
        Some(&anon),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A blocked user: neither their PAT nor their password works.
    let blocked = stack.create_user("blocked", "blocked-password-1").await;
    stack
        .add_member("projects", p["id"].as_i64().unwrap(), blocked, 30)
        .await;
    let blocked_pat = stack
        .pat(blocked, &["read_registry", "write_registry"])
        .await;
    assert_eq!(
        stack
            .jwt(Some(("blocked", &blocked_pat)), &["repository:m/app:pull"])
            .await
            .status(),
        StatusCode::OK,
        "works before the block"
    );
    stack
        .ok(
            Method::POST,
            &format!("/users/{blocked}/block"),
            &stack.root_token,
            None,
            StatusCode::CREATED,
        )
        .await;
    let unknown_pat = format!("bpat-{}", "x".repeat(40));
    let bad: [(&str, (&str, &str)); 6] = [
        ("blocked user's PAT", ("blocked", &blocked_pat)),
        ("blocked user's password", ("blocked", "blocked-password-1")),
        ("unknown PAT", ("dev", &unknown_pat)),
        ("unknown user", ("nobody", "nobody-password-1")),
        ("wrong password", ("dev", "not-the-password")),
        (
            "unknown deploy token",
            ("gitlab+deploy-token-999", "bdt-nope"),
        ),
    ];
    for (what, creds) in bad {
        for scopes in [&[][..], &["repository:m/app:pull"][..]] {
            let r = stack.jwt(Some(creds), scopes).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what} {scopes:?}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED", "{what}: {v}");
        }
    }
});
