//! `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::manifest::{self, ManifestError};
use berth_core::scope::Action;
use berth_core::{Digest, ErrorCode, Reference, RepoName};
use http_body_util::BodyExt;

use std::sync::Arc;

use super::Request;
use crate::error::{RegistryError, Result};
use crate::service;
use crate::service::cache::CachedManifest;
use crate::state::AppState;

/// `GET|HEAD /v2/<name>/manifests/<reference>`: the exact bytes pushed.
pub async fn get_manifest(
    state: &AppState,
    name: &RepoName,
    reference: &Reference,
    req: &Request,
) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Pull]).await?;
    let reference_str = reference.to_string();
    let m = match state.manifests.get(name.as_str(), &reference_str) {
        Some(m) => m,
        None => {
            let generation = state.manifests.generation();
            let m = load_manifest(state, name, reference).await?;
            state
                .manifests
                .put(name.as_str(), &reference_str, m.clone(), generation);
            m
        }
    };
    let len = m.payload.len();
    let headers = [
        (header::CONTENT_TYPE, header_value(&m.media_type)),
        (
            header::HeaderName::from_static("docker-content-digest"),
            header_value(&m.digest),
        ),
        (header::ETAG, header_value(&format!("\"{}\"", m.digest))),
        (header::CONTENT_LENGTH, HeaderValue::from(len)),
    ];
    if req.method == axum::http::Method::HEAD {
        return Ok((headers, axum::body::Body::empty()).into_response());
    }
    // Counted in memory only; written in batches (service::usage).
    let tag = match reference {
        Reference::Tag(t) => Some(t.as_str()),
        Reference::Digest(_) => None,
    };
    state.pulls.record(m.repository_id, tag, chrono::Utc::now());
    Ok((headers, m.payload.clone()).into_response())
}

/// The manifest `reference` names, from the database. A tag is first resolved to its digest
/// alone, so a manifest this process already holds by digest is shared, not loaded again.
async fn load_manifest(
    state: &AppState,
    name: &RepoName,
    reference: &Reference,
) -> Result<Arc<CachedManifest>> {
    let repo = super::existing_repository(state, name).await?;
    let unknown = || {
        RegistryError::new(ErrorCode::ManifestUnknown)
            .message(format!("manifest {reference} not found in {name}"))
    };
    let digest = match reference {
        Reference::Tag(t) => {
            let digest = berth_db::manifests::digest_by_tag(&state.db.read, repo.id, t)
                .await?
                .ok_or_else(unknown)?;
            if let Some(cached) = state.manifests.get(name.as_str(), &digest) {
                return Ok(cached);
            }
            digest
        }
        Reference::Digest(d) => d.to_string(),
    };
    let m = berth_db::manifests::find_by_digest(&state.db.read, repo.id, &digest)
        .await?
        .ok_or_else(unknown)?;
    Ok(Arc::new(CachedManifest {
        repository_id: repo.id,
        digest: m.digest,
        media_type: m.media_type,
        payload: m.payload.into(),
    }))
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// `PUT /v2/<name>/manifests/<reference>`
pub async fn put_manifest(
    state: &AppState,
    name: &RepoName,
    reference: &Reference,
    req: &Request,
    body: axum::body::Body,
) -> Result<Response> {
    let claims = crate::auth::authorize(
        state,
        &req.headers,
        name.as_str(),
        &[Action::Pull, Action::Push],
    )
    .await?;
    super::require_project(state, name).await?;
    let immutable = crate::auth::immutable_patterns(&claims, name.as_str());
    let content_type = req.header(header::CONTENT_TYPE).map(str::to_owned);
    let payload = read_limited(body, manifest::MAX_MANIFEST_BYTES).await?;
    let algorithm = match reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => berth_core::Algorithm::Sha256,
    };
    let digest = Digest::compute(algorithm, &payload);
    if let Reference::Digest(expected) = reference
        && *expected != digest
    {
        return Err(RegistryError::new(ErrorCode::DigestInvalid)
            .message(format!("manifest digest is {digest}, not {expected}")));
    }
    let parsed = manifest::parse(&payload, content_type.as_deref()).map_err(|e| match e {
        ManifestError::TooLarge => {
            RegistryError::new(ErrorCode::SizeInvalid).message(e.to_string())
        }
        other => RegistryError::new(ErrorCode::ManifestInvalid).message(other.to_string()),
    })?;
    let tag = match reference {
        Reference::Tag(t) => Some(t.as_str()),
        Reference::Digest(_) => None,
    };
    service::manifests::put(state, name, tag, &digest, &parsed, &payload, &immutable).await?;
    state.manifests.invalidate(name.as_str());
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        header_value(&format!("/v2/{name}/manifests/{digest}")),
    );
    h.insert("docker-content-digest", header_value(&digest.to_string()));
    if let Some(subject) = &parsed.subject {
        h.insert("oci-subject", header_value(&subject.digest.to_string()));
    }
    Ok(resp)
}

/// Read at most `limit` bytes; a longer body is `SIZE_INVALID` (never buffered whole).
async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Vec<u8>> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(RegistryError::new(ErrorCode::SizeInvalid)
                .message("manifest is larger than the 4 MiB limit"))
        }
        Err(_) => Err(RegistryError::new(ErrorCode::ManifestInvalid)
            .message("could not read the request body")),
    }
}

/// `DELETE /v2/<name>/manifests/<reference>`: a digest deletes the manifest and its tags;
/// a tag deletes only the tag. Neither may remove a tag the token's immutable patterns
/// match (`TAG_IMMUTABLE`).
pub async fn delete_manifest(
    state: &AppState,
    name: &RepoName,
    reference: &Reference,
    req: &Request,
) -> Result<Response> {
    let claims =
        crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Delete]).await?;
    let immutable = crate::auth::immutable_patterns(&claims, name.as_str());
    let repo = super::existing_repository(state, name).await?;
    match reference {
        Reference::Tag(t) => service::manifests::delete_tag(state, repo.id, t, &immutable).await?,
        Reference::Digest(d) => service::manifests::delete(state, repo.id, d, &immutable).await?,
    }
    state.manifests.invalidate(name.as_str());
    Ok(StatusCode::ACCEPTED.into_response())
}
