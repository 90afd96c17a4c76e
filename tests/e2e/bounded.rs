//! Bounded memory and cost under heavy but legal use, measured on the real processes: the
//! registry's manifest cache keeps one copy of a manifest however many tags name it and
//! stays within its byte budget; the referrers list comes in pages (`Link: rel="next"`)
//! and never holds every referrer's bytes at once; the token endpoint refuses a request
//! for more scopes than it serves. Memory is read from `/proc/<pid>/status` (`VmRSS` now,
//! `VmHWM` the peak) and must stay under 150 MB.

use std::collections::BTreeSet;

use berth_core::Digest;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stack::Stack;
use crate::stack_test;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The registry's memory limit in these scenarios: 150 MB, in the kB `/proc` counts in.
const LIMIT_KB: u64 = 150_000_000 / 1024;
/// A manifest just under the registry's 4 MiB limit.
const BIG: usize = 4 * 1024 * 1024 - 4096;

/// (`VmRSS`, `VmHWM`) of process `pid`, in kB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Assert the registry's resident and peak memory are under the limit; returns them.
fn assert_registry_memory(stack: &Stack, when: &str) -> (u64, u64) {
    let (rss, hwm) = memory_kb(stack.registry.pid());
    eprintln!("registry memory {when}: VmRSS {rss} kB, VmHWM {hwm} kB");
    assert!(
        rss < LIMIT_KB,
        "registry VmRSS {rss} kB {when}, limit {LIMIT_KB} kB"
    );
    assert!(
        hwm < LIMIT_KB,
        "registry VmHWM {hwm} kB {when}, limit {LIMIT_KB} kB"
    );
    (rss, hwm)
}

/// A project `<group>/app` (private) and a root registry token for `repository`s in it.
async fn project(stack: &Stack, group: &str, repositories: &[&str]) -> String {
    let g = stack.create_group(group, None).await;
    stack
        .create_project(g["id"].as_i64().unwrap(), "app", "private", "enabled")
        .await;
    let scopes: Vec<String> = repositories
        .iter()
        .map(|r| format!("repository:{r}:pull,push"))
        .collect();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    stack
        .registry_token(Some(("root", &stack.root_token)), &scopes)
        .await
}

/// Push `data` as a blob of `name`; returns its digest.
async fn push_blob(stack: &Stack, name: &str, jwt: &str, data: &[u8]) -> Digest {
    let digest = Digest::sha256(data);
    let r = stack
        .http
        .post(format!(
            "{}/v2/{name}/blobs/uploads/?digest={digest}",
            stack.registry.url
        ))
        .bearer_auth(jwt)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    digest
}

/// PUT `manifest` as `reference` of `name`.
async fn put_manifest(stack: &Stack, name: &str, jwt: &str, reference: &str, manifest: &[u8]) {
    let r = stack
        .http
        .put(format!(
            "{}/v2/{name}/manifests/{reference}",
            stack.registry.url
        ))
        .bearer_auth(jwt)
        .header("content-type", MANIFEST_TYPE)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
}

/// An image manifest over a small config and layer (pushed here), with `extra` fields and an
/// annotation `pad` that brings it to `size` bytes.
async fn manifest(
    stack: &Stack,
    name: &str,
    jwt: &str,
    seed: &str,
    extra: Value,
    size: usize,
) -> Vec<u8> {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let layer = format!("layer-{seed}").into_bytes();
    let c = push_blob(stack, name, jwt, &config).await;
    let l = push_blob(stack, name, jwt, &layer).await;
    let build = |pad: usize| {
        let mut fields = extra.clone();
        fields["annotations"] =
            json!({"org.example.seed": seed, "org.example.pad": "x".repeat(pad)});
        crate::support::image_manifest((&c, config.len()), &[(&l, layer.len())], fields)
    };
    let bare = build(0).len();
    let m = build(size.saturating_sub(bare));
    assert!(m.len() <= 4 * 1024 * 1024, "{} bytes", m.len());
    m
}

stack_test!(many_tags_of_one_large_manifest, |stack| {
    let name = "mem/app";
    let jwt = project(&stack, "mem", &[name]).await;
    let big = manifest(&stack, name, &jwt, "one", json!({}), BIG).await;
    let digest = Digest::sha256(&big).to_string();
    for i in 0..200 {
        put_manifest(&stack, name, &jwt, &format!("t{i}"), &big).await;
    }
    assert_registry_memory(&stack, "after 200 tag pushes");
    let jwt = stack
        .registry_token(
            Some(("root", &stack.root_token)),
            &[&format!("repository:{name}:pull")],
        )
        .await;
    for round in 0..2 {
        for i in 0..200 {
            let r = stack
                .http
                .get(format!("{}/v2/{name}/manifests/t{i}", stack.registry.url))
                .bearer_auth(&jwt)
                .header("accept", MANIFEST_TYPE)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
            let body = r.bytes().await.unwrap();
            assert_eq!(body.len(), big.len(), "round {round} tag t{i}");
        }
        assert_registry_memory(&stack, &format!("after GET round {}", round + 1));
    }
});

/// Follow `first` and its `Link: rel="next"` pages; returns each page's descriptors and
/// body size, and asserts each page's headers with `check`.
async fn referrer_pages(
    stack: &Stack,
    jwt: &str,
    first: &str,
    check: impl Fn(&reqwest::header::HeaderMap),
) -> Vec<(Vec<Value>, usize)> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        assert!(pages.len() < 1000, "the Link chain does not end");
        let r = stack
            .http
            .get(format!("{}{path}", stack.registry.url))
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/vnd.oci.image.index.v1+json"
        );
        check(r.headers());
        next = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .map(|link| {
                let (url, rel) = link.split_once(';').expect("Link has a rel");
                assert_eq!(rel.trim(), "rel=\"next\"");
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            });
        let body = r.bytes().await.unwrap();
        let index: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        pages.push((index["manifests"].as_array().unwrap().clone(), body.len()));
    }
    pages
}

stack_test!(many_large_referrers, |stack| {
    let name = "ref/app";
    let jwt = project(&stack, "ref", &[name]).await;
    let subject = manifest(&stack, name, &jwt, "subject", json!({}), 0).await;
    put_manifest(&stack, name, &jwt, "v1", &subject).await;
    let subject = Digest::sha256(&subject);
    let artifact_type = "application/vnd.example.large+json";
    let mut pushed = BTreeSet::new();
    for i in 0..60 {
        let extra = json!({
            "artifactType": artifact_type,
            "subject": {"mediaType": MANIFEST_TYPE, "digest": subject.to_string(), "size": 1},
        });
        let m = manifest(&stack, name, &jwt, &format!("r{i}"), extra, BIG).await;
        let digest = Digest::sha256(&m).to_string();
        put_manifest(&stack, name, &jwt, &digest, &m).await;
        pushed.insert(digest);
    }
    assert_registry_memory(&stack, "after 60 referrer pushes");
    let pages = referrer_pages(
        &stack,
        &jwt,
        &format!("/v2/{name}/referrers/{subject}"),
        |_| {},
    )
    .await;
    assert_registry_memory(&stack, "after listing the referrers");
    let mut listed = BTreeSet::new();
    for (descriptors, bytes) in &pages {
        // A page holds at most about one large manifest's worth of descriptors.
        assert!(*bytes <= 5 * 1024 * 1024, "a page of {bytes} bytes");
        for d in descriptors {
            assert_eq!(d["mediaType"], MANIFEST_TYPE);
            assert_eq!(d["artifactType"], artifact_type);
            assert!(d["size"].as_u64().unwrap() > BIG as u64 - 64);
            let pad = d["annotations"]["org.example.pad"].as_str().unwrap();
            assert!(pad.len() > BIG - 1024, "annotations are listed whole");
            assert!(listed.insert(d["digest"].as_str().unwrap().to_owned()));
        }
    }
    assert!(pages.len() > 1, "60 referrers of 4 MiB in one response");
    assert_eq!(listed, pushed);
});

stack_test!(referrers_come_in_pages, |stack| {
    let name = "pages/app";
    let jwt = project(&stack, "pages", &[name]).await;
    let subject = manifest(&stack, name, &jwt, "subject", json!({}), 0).await;
    put_manifest(&stack, name, &jwt, "v1", &subject).await;
    let subject = Digest::sha256(&subject);
    let (sbom, sig) = ("application/spdx+json", "application/vnd.dev.sigstore");
    let mut all = Vec::new();
    let mut sboms = Vec::new();
    for (i, t) in [sbom, sig, sbom, sig, sbom].iter().enumerate() {
        let extra = json!({
            "artifactType": t,
            "subject": {"mediaType": MANIFEST_TYPE, "digest": subject.to_string(), "size": 1},
        });
        let m = manifest(&stack, name, &jwt, &format!("p{i}"), extra, 0).await;
        let digest = Digest::sha256(&m).to_string();
        put_manifest(&stack, name, &jwt, &digest, &m).await;
        if *t == sbom {
            sboms.push(digest.clone());
        }
        all.push(digest);
    }
    all.sort();
    sboms.sort();
    let digests = |pages: &[(Vec<Value>, usize)]| -> Vec<String> {
        pages
            .iter()
            .flat_map(|(d, _)| d.iter().map(|d| d["digest"].as_str().unwrap().to_owned()))
            .collect()
    };
    let sizes = |pages: &[(Vec<Value>, usize)]| -> Vec<usize> {
        pages.iter().map(|(d, _)| d.len()).collect()
    };

    // `n` bounds a page; the pages together list every referrer once, in digest order.
    let base = format!("/v2/{name}/referrers/{subject}");
    let pages = referrer_pages(&stack, &jwt, &format!("{base}?n=2"), |h| {
        assert!(h.get("oci-filters-applied").is_none());
    })
    .await;
    assert_eq!(sizes(&pages), vec![2, 2, 1]);
    assert_eq!(digests(&pages), all);
    // Without `n`, an ordinary subject's referrers come in one page.
    let pages = referrer_pages(&stack, &jwt, &base, |_| {}).await;
    assert_eq!(sizes(&pages), vec![5]);
    // The filter holds on every page, and every page says it was applied.
    let pages = referrer_pages(
        &stack,
        &jwt,
        &format!("{base}?n=2&artifactType=application%2Fspdx%2Bjson"),
        |h| assert_eq!(h["oci-filters-applied"], "artifactType"),
    )
    .await;
    assert_eq!(sizes(&pages), vec![2, 1]);
    assert_eq!(digests(&pages), sboms);
    for (descriptors, _) in &pages {
        for d in descriptors {
            assert_eq!(d["artifactType"], sbom);
            assert!(d["annotations"]["org.example.seed"].is_string());
        }
    }
    // A cursor that is not a digest is refused, not read as "from the start".
    let r = stack
        .http
        .get(format!("{}{base}?last=nonsense", stack.registry.url))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "DIGEST_INVALID");
});

stack_test!(token_requests_are_capped_in_scopes, |stack| {
    let g = stack.create_group("cap", None).await;
    stack
        .create_project(g["id"].as_i64().unwrap(), "app", "public", "enabled")
        .await;
    let scopes: Vec<String> = (0..17)
        .map(|i| format!("repository:cap/app/r{i}:pull"))
        .collect();
    let as_refs = |n: usize| scopes[..n].iter().map(String::as_str).collect::<Vec<_>>();

    // At the cap: served, every scope granted.
    let token = stack
        .registry_token(Some(("root", &stack.root_token)), &as_refs(16))
        .await;
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["access"].as_array().unwrap().len(), 16);

    // Past it, anonymous or not, one value or many: refused whole with a 400 that says why.
    let refused = |r: reqwest::Response, n: usize| async move {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{n} scopes");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["code"], "UNSUPPORTED");
        let message = v["errors"][0]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!("{n} scopes")) && message.contains("at most 16"),
            "{message}"
        );
    };
    for basic in [None, Some(("root", stack.root_token.as_str()))] {
        refused(stack.jwt(basic, &as_refs(17)).await, 17).await;
    }
    let packed = as_refs(17).join(" ");
    refused(stack.jwt(None, &[&packed]).await, 17).await;
    // The anonymous 1,900-scope request (`:` and `/` need no escaping in a query, which
    // keeps it within the 64 KiB a request target may be).
    let mut url = format!("{}/jwt/auth?service=container_registry", stack.auth.url);
    for i in 0..1900 {
        url.push_str(&format!("&scope=repository:c/a/r{i}:pull"));
    }
    refused(stack.http.get(url).send().await.unwrap(), 1900).await;

    // The OAuth2 form answers in its own format.
    let form: Vec<(&str, String)> = vec![
        ("grant_type", "password".into()),
        ("username", "root".into()),
        ("password", stack.root_token.clone()),
        ("service", "container_registry".into()),
        ("scope", as_refs(17).join(" ")),
    ];
    let r = stack
        .http
        .post(format!("{}/jwt/auth", stack.auth.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_scope");
});
