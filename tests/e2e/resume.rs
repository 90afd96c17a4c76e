//! Upload sessions survive the registry process: a chunked upload interrupted by SIGKILL is
//! resumed after a restart from the `Range` the registry reports, and an upload started on
//! one process is finished on another sharing the database and store.

use berth_core::Digest;
use reqwest::StatusCode;

use crate::both;
use crate::support::*;

const NAME: &str = "acme/platform/api";

fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

async fn upload_range(env: &Env, base: &str, location: &str, token: &str) -> u64 {
    let r = env
        .http
        .get(format!("{base}{location}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let range = r.headers()["range"].to_str().unwrap().to_owned();
    let end: u64 = range.trim_start_matches("0-").parse().unwrap();
    if end == 0 { 0 } else { end + 1 }
}

both!(interrupted_upload_resumes_after_restart, |env| {
    let token = env.token(NAME, &["pull", "push"]);
    let blob = data(3 * 1024 * 1024);
    let r = env
        .post(&format!("/v2/{NAME}/blobs/uploads/"), &token)
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    // First chunk lands.
    let first = 1024 * 1024;
    let r = env
        .patch(&location, &token)
        .header("content-range", format!("0-{}", first - 1))
        .body(blob[..first].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Second chunk: the registry is killed while the body is still streaming.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let url = format!("{}{location}", env.url());
    let client = env.http.clone();
    let t = token.clone();
    let pending = tokio::spawn(async move {
        let body = reqwest::Body::wrap_stream(tokio_stream(rx));
        client.patch(url).bearer_auth(t).body(body).send().await
    });
    tx.send(Ok(blob[first..first + 256 * 1024].to_vec()))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    env.restart().await;
    drop(tx);
    let _ = pending.await;
    // The client asks where the upload stands and finishes it.
    let offset = upload_range(&env, env.url(), &location, &token).await as usize;
    assert!(
        offset >= first && offset <= first + 256 * 1024,
        "offset {offset}"
    );
    let r = env
        .patch(&location, &token)
        .header("content-range", format!("{offset}-{}", blob.len() - 1))
        .body(blob[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{:?}", r.text().await);
    let digest = Digest::sha256(&blob);
    let r = env
        .put(&format!("{location}?digest={digest}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let body = env
        .get(&format!("/v2/{NAME}/blobs/{digest}"), &token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(Digest::sha256(&body), digest);
});

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

both!(upload_finished_on_a_second_process, |env| {
    let second = env.spawn_registry(&[]).await;
    let token = env.token(NAME, &["pull", "push"]);
    let blob = data(2 * 1024 * 1024 + 17);
    let r = env
        .post(&format!("/v2/{NAME}/blobs/uploads/"), &token)
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let half = blob.len() / 2;
    let r = env
        .patch(&location, &token)
        .body(blob[..half].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // The second process has never seen this upload: it reads the offset from the shared
    // state, appends, and re-hashes the first half from the store to verify the digest.
    assert_eq!(
        upload_range(&env, &second.url, &location, &token).await as usize,
        half
    );
    let r = env
        .http
        .patch(format!("{}{location}", second.url))
        .bearer_auth(&token)
        .header("content-range", format!("{half}-{}", blob.len() - 1))
        .body(blob[half..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let digest = Digest::sha256(&blob);
    let r = env
        .http
        .put(format!("{}{location}?digest={digest}", second.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    // Both processes serve it.
    for base in [env.url(), second.url.as_str()] {
        let body = env
            .http
            .get(format!("{base}/v2/{NAME}/blobs/{digest}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(Digest::sha256(&body), digest);
    }
});
