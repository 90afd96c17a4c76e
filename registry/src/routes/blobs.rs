//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`. A repository serves only blobs linked to
//! it, so blob access follows repository access even though bytes are shared.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_blobstore::BlobBody;
use berth_core::scope::Action;
use berth_core::{Digest, ErrorCode, RepoName};
use berth_db::blobs;

use super::Request;
use crate::error::{RegistryError, Result};
use crate::state::AppState;

/// Read size for streaming a local file: large enough that syscalls and thread hand-offs
/// are not the bottleneck, small enough that a download holds little memory.
const READ_CHUNK: usize = 1024 * 1024;
/// Chunks read ahead of the socket per download (bounds memory at `READ_AHEAD * READ_CHUNK`).
const READ_AHEAD: usize = 2;

/// `GET|HEAD /v2/<name>/blobs/<digest>` with `Range` support.
pub async fn get_blob(
    state: &AppState,
    name: &RepoName,
    digest: &Digest,
    req: &Request,
) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Pull]).await?;
    let repo = super::existing_repository(state, name).await?;
    let d = digest.to_string();
    let size = blobs::linked_size(&state.db.read, repo.id, &d)
        .await?
        .ok_or_else(|| {
            RegistryError::new(ErrorCode::BlobUnknown)
                .message(format!("blob {d} not found in {name}"))
        })? as u64;
    let common = |resp: &mut Response| {
        let h = resp.headers_mut();
        h.insert(
            "docker-content-digest",
            HeaderValue::from_str(&d).unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(
            header::ETAG,
            HeaderValue::from_str(&format!("\"{d}\"")).unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=31536000"),
        );
    };
    if req.method == axum::http::Method::HEAD {
        let mut resp = Response::new(Body::empty());
        common(&mut resp);
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        return Ok(resp);
    }
    let range = match req.header(header::RANGE) {
        Some(r) => Some(parse_range(r, size)?),
        None => None,
    };
    let opened = state.store.open(digest, range).await.map_err(|e| {
        if matches!(e, berth_blobstore::StoreError::NotFound) {
            // The row says the bytes exist; the store disagrees. `berth-gc check` reports it.
            tracing::error!(blob.digest = %d, "blob row without bytes in the store");
        }
        RegistryError::from(e)
    })?;
    let (body, len) = match opened {
        BlobBody::File { file, len, .. } => (file_body(file.into_std().await, len), len),
        BlobBody::Stream { stream, len } => (Body::from_stream(stream), len),
    };
    let mut resp = Response::new(body);
    common(&mut resp);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some((start, _)) = range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let v = format!("bytes {start}-{}/{size}", start + len.saturating_sub(1));
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    metrics::counter!("berth_registry_blob_bytes_sent_total").increment(len);
    Ok(resp)
}

/// Stream `len` bytes of an already positioned local file. One blocking task reads ahead
/// in large chunks into a small bounded channel: tokio's async file reads would hop to the
/// blocking pool once per read, which costs more than the copy itself at these sizes.
/// (Zero-copy `sendfile` is not reachable through hyper, hyperium/hyper#3026; on loopback it
/// measured no faster than this copy path on our machines, see the bench notes.)
fn file_body(mut file: std::fs::File, len: u64) -> Body {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(READ_CHUNK as u64) as usize;
            let mut buf = bytes::BytesMut::zeroed(want);
            let chunk = match file.read(&mut buf) {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob file shorter than its size",
                )),
                Ok(n) => {
                    buf.truncate(n);
                    remaining -= n as u64;
                    Ok(buf.freeze())
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            // The receiver is gone when the client disconnected: stop reading.
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// Parse one `bytes=a-b`, `bytes=a-` or `bytes=-n` range against a blob of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> Result<(u64, u64)> {
    let bad = || {
        RegistryError::new(ErrorCode::RangeInvalid)
            .message(format!("unsatisfiable range {value:?} for {size} bytes"))
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (s, "") => (s.parse().map_err(|_| bad())?, size.saturating_sub(1)),
        (s, e) => (
            s.parse().map_err(|_| bad())?,
            e.parse::<u64>()
                .map_err(|_| bad())?
                .min(size.saturating_sub(1)),
        ),
    };
    if start > end || start >= size {
        return Err(bad());
    }
    Ok((start, end))
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlink the blob from the repository; the bytes go
/// when the GC finds nothing references them.
pub async fn delete_blob(
    state: &AppState,
    name: &RepoName,
    digest: &Digest,
    req: &Request,
) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Delete]).await?;
    let repo = super::existing_repository(state, name).await?;
    if !crate::service::blobs::unlink(state, repo.id, digest).await? {
        return Err(RegistryError::new(ErrorCode::BlobUnknown)
            .message(format!("blob {digest} not found in {name}")));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10).unwrap(), (0, 0));
        assert_eq!(parse_range("bytes=2-", 10).unwrap(), (2, 9));
        assert_eq!(parse_range("bytes=2-100", 10).unwrap(), (2, 9));
        assert_eq!(parse_range("bytes=-3", 10).unwrap(), (7, 9));
        for bad in [
            "bytes=10-",
            "bytes=5-2",
            "items=0-1",
            "bytes=a-b",
            "bytes=-0",
            "0-1",
        ] {
            assert!(parse_range(bad, 10).is_err(), "{bad}");
        }
    }
}
