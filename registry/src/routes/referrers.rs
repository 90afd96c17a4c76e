//! `GET /v2/<name>/referrers/<digest>`: manifests whose `subject` is the digest, as an
//! OCI index, optionally filtered by `artifactType`, one page at a time.
//!
//! A subject may have many referrers of up to 4 MiB each, and each descriptor carries the
//! referrer's annotations, which only its stored bytes hold. So a page is bounded twice: at
//! most `n` descriptors (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]) and referrers of
//! at most [`PAGE_BYTES`] stored bytes together (one referrer always fits, however large).
//! A descriptor is never larger than its manifest's bytes plus its own few fields (its
//! annotations are part of those bytes), so the stored sizes, known before any payload is
//! read, bound the page. The page's payloads are then read in batches of about
//! [`LOAD_BYTES`], each dropped once its descriptor is written straight into the response.
//! When more remain, a `Link: <…>; rel="next"` header names the next page, as the
//! distribution spec provides for a list that does not fit one response.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_core::manifest::OCI_INDEX;
use berth_core::scope::Action;
use berth_core::{Digest, ErrorCode, RepoName};
use berth_db::manifests::Referrer;

use super::Request;
use crate::error::{RegistryError, Result};
use crate::state::AppState;

/// Descriptors per page when the client gives no `n`: every referrer of an ordinary subject
/// (a few signatures, SBOMs and attestations) in one response.
pub const DEFAULT_PAGE: u64 = 250;
/// Most descriptors per page, whatever `n` asks.
pub const MAX_PAGE: u64 = 1000;
/// Most stored bytes of the referrers one page describes (one referrer always fits).
pub const PAGE_BYTES: i64 = 4 * 1024 * 1024;
/// About how many stored bytes are read from the database at once.
pub const LOAD_BYTES: i64 = 1024 * 1024;

/// `GET /v2/<name>/referrers/<digest>?artifactType=&n=&last=`
pub async fn list_referrers(
    state: &AppState,
    name: &RepoName,
    subject: &Digest,
    req: &Request,
) -> Result<Response> {
    crate::auth::authorize(state, &req.headers, name.as_str(), &[Action::Pull]).await?;
    let artifact_type = req.param("artifactType");
    // `n=0` would make a page that lists nothing yet points at itself.
    let n = super::tags::page_size(req, DEFAULT_PAGE, MAX_PAGE)?.max(1);
    let after = match req.param("last") {
        None => None,
        Some(last) => Some(
            last.parse::<Digest>()
                .map_err(|_| {
                    RegistryError::new(ErrorCode::DigestInvalid)
                        .message("last must be the digest a previous page's Link named")
                })?
                .to_string(),
        ),
    };
    let mut body = Vec::new();
    body.extend_from_slice(br#"{"schemaVersion":2,"mediaType":""#);
    body.extend_from_slice(OCI_INDEX.as_bytes());
    body.extend_from_slice(br#"","manifests":["#);
    let repo = berth_db::repositories::find_by_name(&state.db.read, name.as_str()).await?;
    // The spec wants an empty index, not a 404, when nothing refers to the subject.
    let next = match &repo {
        None => None,
        Some(r) => {
            // One more than the page holds tells whether another page follows.
            let rows = berth_db::manifests::referrers(
                &state.db.read,
                r.id,
                &subject.to_string(),
                artifact_type.as_deref(),
                after.as_deref(),
                n + 1,
            )
            .await?;
            write_page(state, r.id, rows, n, &mut body).await?
        }
    };
    body.extend_from_slice(b"]}");
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if artifact_type.is_some() {
        h.insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    if let Some(cursor) = next {
        let mut next = format!("/v2/{name}/referrers/{subject}?last={}", encode(&cursor));
        if req.param("n").is_some() {
            next.push_str(&format!("&n={n}"));
        }
        if let Some(t) = &artifact_type {
            next.push_str(&format!("&artifactType={}", encode(t)));
        }
        if let Ok(link) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            h.insert(header::LINK, link);
        }
    }
    Ok(resp)
}

/// A referrer's descriptor as listed; its strings borrow from the row and the stored bytes.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Annotations<'a>>,
}

/// Annotations as stored: borrowed from the manifest's bytes unless a string has escapes.
type Annotations<'a> = BTreeMap<Text<'a>, Text<'a>>;

/// A JSON string borrowed from the input when it can be (serde's own `Cow` always copies
/// inside a map), so a large annotation is not copied on its way to the response.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl serde::Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Write the descriptors of the first of `rows` (which may hold one more than `n`, telling
/// that more follow) into `out`, comma-separated, up to `n` and [`PAGE_BYTES`] of stored
/// bytes; returns the cursor of the next page, if there is one.
async fn write_page(
    state: &AppState,
    repository_id: i64,
    mut rows: Vec<Referrer>,
    n: u64,
    out: &mut Vec<u8>,
) -> Result<Option<String>> {
    let mut more = rows.len() as u64 > n;
    rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    let mut take = 0;
    let mut stored = 0i64;
    for r in &rows {
        if take > 0 && stored.saturating_add(r.size) > PAGE_BYTES {
            more = true;
            break;
        }
        stored = stored.saturating_add(r.size.max(0));
        take += 1;
    }
    rows.truncate(take);
    let mut listed = 0usize;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut batch_bytes = 0i64;
        while end < rows.len()
            && (end == start || batch_bytes.saturating_add(rows[end].size) <= LOAD_BYTES)
        {
            batch_bytes = batch_bytes.saturating_add(rows[end].size.max(0));
            end += 1;
        }
        let batch = &rows[start..end];
        let ids = batch.iter().map(|r| r.id).collect();
        let mut payloads: HashMap<i64, Vec<u8>> =
            berth_db::manifests::payloads(&state.db.read, repository_id, ids)
                .await?
                .into_iter()
                .collect();
        for r in batch {
            // Deleted since the list was read, or a digest that no longer parses: left out.
            let Some(payload) = payloads.remove(&r.id) else {
                continue;
            };
            if r.digest.parse::<Digest>().is_err() {
                continue;
            }
            let descriptor = Listed {
                media_type: &r.media_type,
                digest: &r.digest,
                size: r.size,
                artifact_type: r.artifact_type.as_deref(),
                annotations: annotations(&payload),
            };
            if listed > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, &descriptor).map_err(|e| {
                tracing::error!(error = %e, "writing a referrer descriptor");
                RegistryError::new(ErrorCode::Internal)
            })?;
            listed += 1;
        }
        start = end;
    }
    // The next page starts after the last referrer this one dealt with, listed or not.
    Ok(if more {
        rows.last().map(|r| r.digest.clone())
    } else {
        None
    })
}

/// A stored manifest's top-level annotations (the referrers API lists them); the rest of
/// the manifest is skipped, not built, and the strings are borrowed where they can be.
fn annotations(payload: &[u8]) -> Option<Annotations<'_>> {
    #[derive(serde::Deserialize)]
    struct Annotated<'a> {
        #[serde(default, borrow)]
        annotations: Option<Annotations<'a>>,
    }
    serde_json::from_slice::<Annotated<'_>>(payload)
        .ok()
        .and_then(|a| a.annotations)
}

/// Percent-encode a query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_read_without_the_rest() {
        let m = br#"{"schemaVersion":2,"layers":[{"x":1}],"annotations":{"a":"b"}}"#;
        let read = annotations(m).unwrap();
        let (k, v) = read.iter().next().unwrap();
        assert_eq!((k.0.as_ref(), v.0.as_ref()), ("a", "b"));
        assert!(
            matches!(v.0, Cow::Borrowed(_)),
            "a plain string is not copied"
        );
        // Escaped strings are unescaped, as any JSON reader would, and written back escaped.
        let escaped = br#"{"annotations":{"q":"say \"hi\""}}"#;
        let read = annotations(escaped).unwrap();
        assert_eq!(read.values().next().unwrap().0, "say \"hi\"");
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"q":"say \"hi\""}"#
        );
        assert_eq!(annotations(br#"{"schemaVersion":2}"#), None);
        assert_eq!(annotations(b"not json"), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("application/vnd.dev+json"),
            "application%2Fvnd.dev%2Bjson"
        );
        assert_eq!(encode("sha256:ab"), "sha256%3Aab");
    }
}
