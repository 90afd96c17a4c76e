//! The OpenAPI document berth-auth serves at `GET /api/v4/openapi.json` stays honest: it is
//! OpenAPI 3.1 JSON, served without credentials; every path and method it lists reaches a
//! real handler (not the router's fallback, whose body is `{"error":"404 Not Found"}`, nor a
//! 405); and every literal route path in `auth/src/api/*.rs` is listed.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::stack::Stack;

/// A path template with its `{placeholders}` filled by dummy values.
fn fill(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{digest}" => format!("sha256:{}", "0".repeat(64)),
            "{tag_name}" => "latest".to_owned(),
            s if s.starts_with('{') => "1".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The literal paths given to `.route(` and to the `scoped(kind, base)` helpers in
/// berth-auth's API modules.
fn source_paths() -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../auth/src/api");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("auth/src/api") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        let compact: String = text.split_whitespace().collect::<Vec<_>>().join("");
        for marker in [".route(\"", "\"project\",\"", "\"group\",\""] {
            for rest in compact.split(marker).skip(1) {
                if let Some(p) = rest.split('"').next()
                    && p.starts_with('/')
                {
                    out.insert(p.to_owned());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_router() {
    let Some(stack) = Stack::start(berth_test_support::Backend::Sqlite).await else {
        return;
    };
    let r = stack
        .http
        .get(format!("{}/api/v4/openapi.json", stack.auth.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = r.json().await.expect("the document is JSON");
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    let paths = doc["paths"].as_object().expect("paths");

    let mut checked = 0;
    for (template, item) in paths {
        for (method, _) in item.as_object().expect("path item") {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let url = format!("{}/api/v4{}", stack.auth.url, fill(template));
            let r = stack.http.request(m.clone(), &url).send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or_default();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {template}: no such method"
            );
            assert!(
                body.get("error").is_none(),
                "{m} {template}: fell through to the router's fallback ({status} {body})"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} operations listed");

    // The other way round: every literal route path in the source is documented.
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let sources = source_paths();
    assert!(sources.len() > 20, "{sources:?}");
    for p in &sources {
        let p = p.replace("{{", "{").replace("}}", "}");
        assert!(
            documented.contains(p.as_str())
                || documented.iter().any(|d| d.starts_with(&format!("{p}/"))),
            "{p} is routed but not in auth/openapi.json"
        );
    }
}
