//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (monolithic, session start, mount),
//! `PATCH`/`PUT`/`GET`/`DELETE /v2/<name>/blobs/uploads/<id>`. Session state lives in the
//! database and the store, so any registry process can continue an upload.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::scope::{Action, Scope};
use berth_core::{Digest, ErrorCode, RepoName};
use berth_db::{repositories, uploads};

use super::Request;
use crate::error::{RegistryError, Result};
use crate::service;
use crate::service::uploads::SMALL_BLOB;
use crate::state::AppState;

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// 201 for a blob now in the repository.
fn created(name: &RepoName, digest: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/{digest}")));
    h.insert("docker-content-digest", hv(&digest.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

/// 202 describing an upload in progress (`Range` is inclusive, `0-0` when empty, as
/// Distribution answers).
fn in_progress(status: StatusCode, name: &RepoName, id: &str, size: u64) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/blobs/uploads/{id}")),
    );
    h.insert(header::RANGE, hv(&format!("0-{}", size.saturating_sub(1))));
    h.insert("docker-upload-uuid", hv(id));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

fn parse_digest(req: &Request) -> Result<Option<Digest>> {
    req.param("digest")
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| RegistryError::new(ErrorCode::DigestInvalid).message(e.to_string()))
        })
        .transpose()
}

fn content_length(req: &Request) -> Option<u64> {
    req.header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse().ok())
}

/// `POST /v2/<name>/blobs/uploads/`
pub async fn start_upload(
    state: &AppState,
    name: &RepoName,
    req: &Request,
    body: Body,
) -> Result<Response> {
    let mount = req.param("mount");
    let from = req.param("from");
    let needed = [Scope::repository(
        name.as_str(),
        &[Action::Pull, Action::Push],
    )];
    let mut challenge = needed.to_vec();
    if let Some(from) = &from {
        challenge.push(Scope::repository(from.as_str(), &[Action::Pull]));
    }
    let claims = crate::auth::authorize_with(state, &req.headers, &needed, &challenge).await?;
    crate::auth::check_project(state, &claims, name.as_str(), &challenge).await?;
    super::require_project(state, name).await?;
    let now = chrono::Utc::now();
    // Usually the repository exists: look on the read pool before queueing for the writer.
    let repo = match repositories::find_by_name(&state.db.read, name.as_str()).await? {
        Some(repo) => repo,
        None => repositories::get_or_create(&state.db.write, name.as_str(), now).await?,
    };

    if let (Some(mount), Some(from)) = (&mount, &from) {
        // Mounting needs pull on the source; without it (or without the blob there) the
        // request silently becomes a normal upload session and nothing is linked.
        // A source whose project's registry is disabled, or for whose project the token
        // was not issued, is not readable either.
        let source_readable =
            crate::auth::grants(&claims, &Scope::repository(from.as_str(), &[Action::Pull]))
                && crate::auth::check_project(state, &claims, from, &challenge)
                    .await
                    .is_ok();
        if let (true, Ok(digest)) = (source_readable, mount.parse::<Digest>())
            && let Some(size) = mountable(state, from, &digest).await?
        {
            // The GC may have taken the blob since `mountable` saw it: then this becomes a
            // normal upload session like any other failed mount.
            match service::uploads::record_blob(state, repo.id, &digest, size, None, None).await {
                Ok(()) => {
                    metrics::counter!("berth_registry_blob_mounts_total").increment(1);
                    return Ok(created(name, &digest));
                }
                Err(e) if e.code == ErrorCode::BlobUnknown => {}
                Err(e) => return Err(e),
            }
        }
    }

    let digest = parse_digest(req)?;
    let len = content_length(req);
    if let (Some(digest), Some(len)) = (&digest, len.filter(|l| *l <= SMALL_BLOB)) {
        // A small monolithic upload needs no session at all.
        service::uploads::put_small(state, repo.id, body, len, digest, None).await?;
        return Ok(created(name, digest));
    }
    let id = uuid::Uuid::new_v4().to_string();
    // Only the session row is written now; the store creates the upload with its first byte.
    service::uploads::open_session(state, &id, repo.id, claims.sub.as_deref()).await?;
    if let Some(digest) = digest {
        // Monolithic upload: the body is the whole blob.
        let result = async {
            service::uploads::append(state, &id, 0, body, len).await?;
            service::uploads::finish(state, repo.id, &id, &digest).await
        }
        .await;
        if let Err(e) = result {
            // The upload's own error is the answer; a session left behind by a failed
            // discard expires with the stale uploads `berth-gc check --repair` removes.
            if let Err(discard) = service::uploads::discard(state, &id).await {
                tracing::warn!(upload.id = %id, error = ?discard, "discarding a failed monolithic upload");
            }
            return Err(e);
        }
        return Ok(created(name, &digest));
    }
    Ok(in_progress(StatusCode::ACCEPTED, name, &id, 0))
}

/// Size of `digest` if it is linked to repository `from`.
async fn mountable(state: &AppState, from: &str, digest: &Digest) -> Result<Option<i64>> {
    let Ok(from) = RepoName::parse(from) else {
        return Ok(None);
    };
    let Some(source) = repositories::find_by_name(&state.db.read, from.as_str()).await? else {
        return Ok(None);
    };
    Ok(berth_db::blobs::linked_size(&state.db.read, source.id, &digest.to_string()).await?)
}

/// The session row `id` of repository `name`, or `BLOB_UPLOAD_UNKNOWN`.
async fn session_row(
    state: &AppState,
    name: &RepoName,
    id: &str,
) -> Result<berth_db::entity::uploads::Model> {
    uploads::find_in_repository(&state.db.read, id, name.as_str())
        .await?
        .ok_or_else(|| {
            RegistryError::new(ErrorCode::BlobUploadUnknown)
                .message(format!("upload {id} not found in {name}"))
        })
}

/// Bytes the store holds for upload `id`. The store has the true length: a PATCH cut
/// short by a crash is rolled back there. No upload in the store means no byte yet.
async fn stored_size(state: &AppState, id: &str) -> Result<u64> {
    match state.store.upload_size(id).await {
        Ok(size) => Ok(size),
        Err(berth_blobstore::StoreError::UploadNotFound) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The session `id` of repository `name`: its repository id and current size.
async fn session(state: &AppState, name: &RepoName, id: &str) -> Result<(i64, u64)> {
    let row = session_row(state, name, id).await?;
    Ok((row.repository_id, stored_size(state, id).await?))
}

/// `Content-Range: <start>-<end>` of a chunk.
pub fn parse_content_range(v: &str) -> Result<(u64, u64)> {
    let bad = || {
        RegistryError::new(ErrorCode::BlobUploadInvalid).message(format!(
            "malformed Content-Range {v:?}; expected <start>-<end>"
        ))
    };
    let v = v.trim();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let (a, b) = v.split_once('-').ok_or_else(bad)?;
    let (start, end) = (
        a.trim().parse::<u64>().map_err(|_| bad())?,
        b.trim().parse::<u64>().map_err(|_| bad())?,
    );
    if end < start {
        return Err(bad());
    }
    Ok((start, end))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: append a chunk (streamed).
pub async fn patch_upload(
    state: &AppState,
    name: &RepoName,
    id: &str,
    req: &Request,
    body: Body,
) -> Result<Response> {
    crate::auth::authorize(
        state,
        &req.headers,
        name.as_str(),
        &[Action::Pull, Action::Push],
    )
    .await?;
    let (_, size) = session(state, name, id).await?;
    let mut expected_len = content_length(req);
    if let Some(range) = req.header(header::CONTENT_RANGE) {
        let (start, end) = parse_content_range(range)?;
        if start != size {
            let mut resp = RegistryError::new(ErrorCode::RangeInvalid)
                .message(format!(
                    "upload is at offset {size}, chunk starts at {start}"
                ))
                .into_response();
            resp.headers_mut()
                .insert(header::RANGE, hv(&format!("0-{}", size.saturating_sub(1))));
            resp.headers_mut().insert(
                header::LOCATION,
                hv(&format!("/v2/{name}/blobs/uploads/{id}")),
            );
            return Ok(resp);
        }
        // `end` may be the largest number there is: the length is computed without overflow.
        let chunk = (end - start).checked_add(1).ok_or_else(|| {
            RegistryError::new(ErrorCode::RangeInvalid).message("Content-Range is too large")
        })?;
        if expected_len.is_some_and(|l| l != chunk) {
            return Err(RegistryError::new(ErrorCode::SizeInvalid)
                .message("Content-Length does not match Content-Range"));
        }
        expected_len = Some(chunk);
    }
    let new_size = service::uploads::append(state, id, size, body, expected_len).await?;
    uploads::set_size(&state.db.write, id, new_size as i64, chrono::Utc::now()).await?;
    Ok(in_progress(StatusCode::ACCEPTED, name, id, new_size))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: optional last chunk, then verify and commit.
pub async fn put_upload(
    state: &AppState,
    name: &RepoName,
    id: &str,
    req: &Request,
    body: Body,
) -> Result<Response> {
    crate::auth::authorize(
        state,
        &req.headers,
        name.as_str(),
        &[Action::Pull, Action::Push],
    )
    .await?;
    let digest = parse_digest(req)?.ok_or_else(|| {
        RegistryError::new(ErrorCode::DigestInvalid)
            .message("the digest query parameter is required")
    })?;
    let row = session_row(state, name, id).await?;
    let repository_id = row.repository_id;
    let len = content_length(req);
    let chunk_range = req.header(header::CONTENT_RANGE);
    if let (0, None, Some(len)) = (
        row.size,
        chunk_range,
        len.filter(|l| (1..=SMALL_BLOB).contains(l)),
    ) {
        // The whole (small) blob in the closing request and no chunk recorded before: one
        // step, without touching the upload in the store. Should a crashed PATCH have left
        // bytes there, they do not matter: the body alone must hash to the digest, and the
        // stale upload file is the purge job's.
        service::uploads::put_small(state, repository_id, body, len, &digest, Some(id)).await?;
        return Ok(created(name, &digest));
    }
    let size = stored_size(state, id).await?;
    if len != Some(0) {
        if let Some(range) = req.header(header::CONTENT_RANGE) {
            let (start, _) = parse_content_range(range)?;
            if start != size {
                return Err(RegistryError::new(ErrorCode::RangeInvalid).message(format!(
                    "upload is at offset {size}, chunk starts at {start}"
                )));
            }
        }
        service::uploads::append(state, id, size, body, len).await?;
    }
    service::uploads::finish(state, repository_id, id, &digest).await?;
    Ok(created(name, &digest))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: where the upload stands (for resuming).
pub async fn get_upload(
    state: &AppState,
    name: &RepoName,
    id: &str,
    req: &Request,
) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Pull]).await?;
    let (_, size) = session(state, name, id).await?;
    Ok(in_progress(StatusCode::NO_CONTENT, name, id, size))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel.
pub async fn delete_upload(
    state: &AppState,
    name: &RepoName,
    id: &str,
    req: &Request,
) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Delete]).await?;
    session(state, name, id).await?;
    service::uploads::discard(state, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("0-99").unwrap(), (0, 99));
        assert_eq!(parse_content_range("bytes 100-199/*").unwrap(), (100, 199));
        for bad in ["", "abc", "5-2", "1-", "-5", "a-b"] {
            let e = parse_content_range(bad).unwrap_err();
            assert_eq!(e.code, berth_core::ErrorCode::BlobUploadInvalid, "{bad}");
        }
    }
}
