//! `GET /v2/<name>/referrers/<digest>`: manifests whose `subject` is the digest, as an
//! OCI index, optionally filtered by `artifactType`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_core::manifest::{Descriptor, OCI_INDEX};
use berth_core::scope::Action;
use berth_core::{Digest, RepoName};

use super::Request;
use crate::error::Result;
use crate::state::AppState;

/// `GET /v2/<name>/referrers/<digest>?artifactType=`
pub async fn list_referrers(
    state: &AppState,
    name: &RepoName,
    subject: &Digest,
    req: &Request,
) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Pull]).await?;
    let artifact_type = req.param("artifactType");
    let repo = berth_db::repositories::find_by_name(&state.db.read, name.as_str()).await?;
    let rows = match &repo {
        // The spec wants an empty index, not a 404, when nothing refers to the subject.
        None => Vec::new(),
        Some(r) => {
            berth_db::manifests::referrers(
                &state.db.read,
                r.id,
                &subject.to_string(),
                artifact_type.as_deref(),
            )
            .await?
        }
    };
    let mut descriptors = Vec::with_capacity(rows.len());
    for m in rows {
        let Ok(digest) = m.digest.parse::<Digest>() else {
            continue;
        };
        let annotations = berth_core::manifest::parse(&m.payload, Some(&m.media_type))
            .ok()
            .and_then(|p| p.annotations);
        descriptors.push(Descriptor {
            media_type: m.media_type,
            digest,
            size: m.size,
            artifact_type: m.artifact_type,
            annotations,
            platform: None,
            urls: None,
        });
    }
    let body =
        serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors });
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if artifact_type.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
