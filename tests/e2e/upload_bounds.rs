//! Upload sessions are bounded: a repository and a user may hold only so many open
//! sessions (`TOOMANYREQUESTS` beyond), a PATCH whose body stalls ends after the body
//! timeout and frees its upload for the next PATCH, a client that disconnects mid-body or
//! sends a malformed size gets a client error (never a 500 counted as a server error), and
//! the upload stays resumable from where it was.

use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_token::Access;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both;
use crate::support::*;

const NAME: &str = "acme/platform/bounded";

/// A token for `actions` on `name` whose subject is `user`.
fn token_as(env: &Env, user: &str, name: &str) -> String {
    env.keys
        .issuer
        .issue(
            Some(user.to_owned()),
            Some("personal_access_token".into()),
            vec![Access::repository(name, &["pull", "push", "delete"])],
        )
        .expect("sign")
        .0
}

/// `POST` a new session; the response.
async fn start(base: &str, http: &reqwest::Client, name: &str, token: &str) -> reqwest::Response {
    http.post(format!("{base}/v2/{name}/blobs/uploads/"))
        .bearer_auth(token)
        .send()
        .await
        .expect("post")
}

async fn location(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{:?}", r.text().await);
    r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

/// The `status="5xx"` count of the registry's request counter for uploads.
async fn upload_server_errors(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| {
            l.starts_with("berth_registry_requests_total")
                && l.contains("endpoint=\"upload\"")
                && l.contains("status=\"5xx\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Where the upload stands (bytes stored).
async fn offset(base: &str, http: &reqwest::Client, loc: &str, token: &str) -> u64 {
    let r = http
        .get(format!("{base}{loc}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get upload");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let range = r.headers()["range"].to_str().expect("range").to_owned();
    let end: u64 = range.trim_start_matches("0-").parse().expect("range end");
    if end == 0 { 0 } else { end + 1 }
}

/// Open a raw connection and send a PATCH head plus the first `sent` of `declared` bytes.
async fn half_patch(
    base: &str,
    loc: &str,
    token: &str,
    from: u64,
    declared: u64,
    sent: &[u8],
) -> TcpStream {
    let mut s = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nhost: registry\r\nauthorization: Bearer {token}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {declared}\r\n\
         content-range: {from}-{}\r\n\r\n",
        from + declared - 1
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(sent).await.expect("partial body");
    s
}

both!(sessions_are_capped_per_repository_and_per_user, |env| {
    let reg = env
        .spawn_registry(&[
            ("BERTH_MAX_UPLOADS_PER_REPOSITORY", "5"),
            ("BERTH_MAX_UPLOADS_PER_USER", "8"),
        ])
        .await;
    let base = reg.url.as_str();
    let http = &env.http;
    // Per repository: five sessions, the sixth refused in OCI JSON.
    let token = token_as(&env, "tester", NAME);
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(location(start(base, http, NAME, &token).await).await);
    }
    let r = start(base, http, NAME, &token).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    // Ending a session (cancelled or finished) makes room again.
    let r = http
        .delete(format!("{base}{}", open.remove(0)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let loc = location(start(base, http, NAME, &token).await).await;
    let blob = b"a finished session frees its slot".to_vec();
    let digest = Digest::sha256(&blob);
    let r = http
        .put(format!("{base}{loc}?digest={digest}"))
        .bearer_auth(&token)
        .body(blob)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    location(start(base, http, NAME, &token).await).await;

    // Per user: alice may hold eight across repositories; bob is not affected by her.
    for (i, repo) in ["one", "two", "three"].iter().enumerate() {
        let name = format!("acme/platform/{repo}");
        let alice = token_as(&env, "alice", &name);
        let n = if i < 2 { 4 } else { 0 };
        for _ in 0..n {
            location(start(base, http, &name, &alice).await).await;
        }
    }
    let alice = token_as(&env, "alice", "acme/platform/three");
    let r = start(base, http, "acme/platform/three", &alice).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    let bob = token_as(&env, "bob", "acme/platform/three");
    location(start(base, http, "acme/platform/three", &bob).await).await;
    // The refusals left no rows behind: alice's eight, bob's one, tester's five.
    let rows: u64 = {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let db = berth_db::connect(&env.db.url).await.expect("connect");
        berth_db::entity::uploads::Entity::find()
            .count(&db.read)
            .await
            .expect("count")
    };
    assert_eq!(rows, 8 + 1 + 5);
});

both!(
    stalled_patch_frees_the_upload_after_the_body_timeout,
    |env| {
        let reg = env
            .spawn_registry(&[("BERTH_HTTP_BODY_TIMEOUT", "1s")])
            .await;
        let base = reg.url.as_str();
        let http = &env.http;
        let token = env.token(NAME, &["pull", "push"]);
        let loc = location(start(base, http, NAME, &token).await).await;
        let blob: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let r = http
            .patch(format!("{base}{loc}"))
            .bearer_auth(&token)
            .header("content-range", "0-999")
            .body(blob[..1000].to_vec())
            .send()
            .await
            .expect("first chunk");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        // The second chunk stops after 500 of its 2000 bytes and the client stays connected.
        let started = Instant::now();
        let mut stalled = half_patch(base, &loc, &token, 1000, 2000, &blob[1000..1500]).await;
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "a stalled body was still held after 10 s");
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(4), "closed after {waited:?}");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("BLOB_UPLOAD_INVALID"), "{answer}");
        // The upload is where it was and takes the chunk again at once.
        assert_eq!(offset(base, http, &loc, &token).await, 1000);
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            http.patch(format!("{base}{loc}"))
                .bearer_auth(&token)
                .header("content-range", "1000-2999")
                .body(blob[1000..].to_vec())
                .send(),
        )
        .await
        .expect("the second PATCH waited on the stalled one")
        .expect("second chunk");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let digest = Digest::sha256(&blob);
        let r = http
            .put(format!("{base}{loc}?digest={digest}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(upload_server_errors(base).await, 0.0);
        drop(reg);
    }
);

both!(disconnects_and_malformed_sizes_are_client_errors, |env| {
    let base = env.url().to_owned();
    let http = &env.http;
    let token = env.token(NAME, &["pull", "push"]);
    let loc = location(start(&base, http, NAME, &token).await).await;
    let blob: Vec<u8> = (0..2000u32).map(|i| (i % 241) as u8).collect();
    // A client that goes away mid-body.
    let half = half_patch(&base, &loc, &token, 0, 2000, &blob[..700]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(half);
    // The registry has finished with it once the upload answers again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while offset(&base, http, &loc, &token).await != 0 {
        assert!(Instant::now() < deadline, "the cut chunk was kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Malformed sizes: a range that does not parse, one whose length overflows, one that
    // disagrees with Content-Length.
    for (range, status, code) in [
        ("abc", StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
        (
            "0-18446744073709551615",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RANGE_INVALID",
        ),
        ("0-9", StatusCode::BAD_REQUEST, "SIZE_INVALID"),
    ] {
        let r = http
            .patch(format!("{base}{loc}"))
            .bearer_auth(&token)
            .header("content-range", range)
            .body(blob.clone())
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), status, "{range}");
        assert_eq!(error_code(r).await, code, "{range}");
    }
    // Nothing was counted as a server error, and the upload resumes from zero.
    let r = http
        .patch(format!("{base}{loc}"))
        .bearer_auth(&token)
        .header("content-range", "0-1999")
        .body(blob.clone())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let digest = Digest::sha256(&blob);
    let r = http
        .put(format!("{base}{loc}?digest={digest}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(upload_server_errors(&base).await, 0.0);
});
