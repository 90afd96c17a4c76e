//! The HTTP surface: `/v2/...` parsed by `berth_core::route` and dispatched to one handler
//! per endpoint, plus health and metrics.

mod base;
mod blobs;
mod catalog;
mod manifests;
mod referrers;
mod tags;
mod uploads;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use berth_core::ErrorCode;
use berth_core::route::{self, Route, RouteError};

use crate::error::{RegistryError, Result};
use crate::state::AppState;

/// Everything a handler gets from the request.
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw query string.
    pub query: Option<String>,
}

impl Request {
    /// The first value of query parameter `key`, percent-decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| percent_decode(v))
        })
    }

    /// A header as a string.
    pub fn header(&self, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The registry's router.
pub fn router(state: AppState) -> Router {
    let ready_state = state.clone();
    let ready = move || {
        let s = ready_state.clone();
        async move {
            s.db.ping().await.map_err(|e| format!("database: {e}"))?;
            s.store
                .stat(&berth_core::Digest::sha256(b""))
                .await
                .map(|_| ())
                .map_err(|e| format!("store: {e}"))
        }
    };
    let router = Router::new()
        .route("/v2", any(dispatch_base))
        .route("/v2/", any(dispatch_base))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(state)
        .merge(berth_server::health_routes(ready));
    berth_server::catch_panics(router, PANIC_BODY)
}

/// What a request that panicked answers: `UNKNOWN`, as every other internal error.
const PANIC_BODY: &str = r#"{"errors":[{"code":"UNKNOWN","message":"internal server error"}]}"#;

async fn dispatch_base(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    handle(
        state,
        String::new(),
        Request {
            method,
            headers,
            query,
        },
        body,
    )
    .await
}

async fn dispatch(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    handle(
        state,
        rest,
        Request {
            method,
            headers,
            query,
        },
        body,
    )
    .await
}

async fn handle(state: AppState, rest: String, req: Request, body: Body) -> Response {
    let started = Instant::now();
    let method = req.method.clone();
    let parsed = route::parse(&rest);
    let endpoint = match &parsed {
        Ok(r) => endpoint_name(r),
        Err(_) => "invalid",
    };
    let request_id = req
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        request.id = request_id,
        http.method = %method,
        endpoint,
        repository.name = tracing::field::Empty
    );
    if let Some(name) = parsed.as_ref().ok().and_then(Route::repository) {
        span.record("repository.name", name.as_str());
    }
    let result = match parsed {
        Ok(r) => {
            tracing::Instrument::instrument(route_request(&state, r, req, body), span.clone()).await
        }
        Err(RouteError::NotFound) => {
            Err(RegistryError::new(ErrorCode::NameUnknown).message("no such endpoint"))
        }
        Err(RouteError::Name(e)) => {
            Err(RegistryError::new(ErrorCode::NameInvalid).message(e.to_string()))
        }
        Err(RouteError::Reference(e)) => Err(match e {
            berth_core::name::ReferenceError::BadDigest(d) => {
                RegistryError::new(ErrorCode::DigestInvalid).message(d.to_string())
            }
            // A malformed tag cannot name anything stored: reading or deleting it is
            // "unknown" (the conformance suite asks exactly this); only a push under it is
            // an invalid manifest.
            other if method != Method::PUT => {
                RegistryError::new(ErrorCode::ManifestUnknown).message(other.to_string())
            }
            other => RegistryError::new(ErrorCode::ManifestInvalid)
                .message(other.to_string())
                .detail(serde_json::json!({"reason": "invalid tag"})),
        }),
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let method_label = method_label(&method);
    metrics::histogram!("berth_registry_request_duration_seconds", "endpoint" => endpoint, "method" => method_label).record(elapsed.as_secs_f64());
    metrics::counter!("berth_registry_requests_total", "endpoint" => endpoint, "method" => method_label, "status" => status_label(status)).increment(1);
    let _g = span.enter();
    tracing::debug!(
        status,
        duration_ms = elapsed.as_millis() as u64,
        "request done"
    );
    resp
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Status class labels keep the metric's cardinality fixed.
fn status_label(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        401 => "401",
        404 => "404",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn endpoint_name(r: &Route) -> &'static str {
    match r {
        Route::Base => "base",
        Route::Catalog => "catalog",
        Route::Tags(_) => "tags",
        Route::Manifest(..) => "manifest",
        Route::Blob(..) => "blob",
        Route::Uploads(_) | Route::Upload(..) => "upload",
        Route::Referrers(..) => "referrers",
    }
}

async fn route_request(
    state: &AppState,
    route: Route,
    req: Request,
    body: Body,
) -> Result<Response> {
    let m = req.method.clone();
    match (route, m) {
        (Route::Base, Method::GET | Method::HEAD) => base::get_base(state, &req).await,
        (Route::Catalog, Method::GET) => catalog::get_catalog(state, &req).await,
        (Route::Tags(name), Method::GET) => tags::list_tags(state, &name, &req).await,
        (Route::Manifest(name, r), Method::GET | Method::HEAD) => {
            manifests::get_manifest(state, &name, &r, &req).await
        }
        (Route::Manifest(name, r), Method::PUT) => {
            manifests::put_manifest(state, &name, &r, &req, body).await
        }
        (Route::Manifest(name, r), Method::DELETE) => {
            manifests::delete_manifest(state, &name, &r, &req).await
        }
        (Route::Blob(name, d), Method::GET | Method::HEAD) => {
            blobs::get_blob(state, &name, &d, &req).await
        }
        (Route::Blob(name, d), Method::DELETE) => blobs::delete_blob(state, &name, &d, &req).await,
        (Route::Uploads(name), Method::POST) => {
            uploads::start_upload(state, &name, &req, body).await
        }
        (Route::Upload(name, id), Method::GET) => {
            uploads::get_upload(state, &name, &id, &req).await
        }
        (Route::Upload(name, id), Method::PATCH) => {
            uploads::patch_upload(state, &name, &id, &req, body).await
        }
        (Route::Upload(name, id), Method::PUT) => {
            uploads::put_upload(state, &name, &id, &req, body).await
        }
        (Route::Upload(name, id), Method::DELETE) => {
            uploads::delete_upload(state, &name, &id, &req).await
        }
        (Route::Referrers(name, d), Method::GET) => {
            referrers::list_referrers(state, &name, &d, &req).await
        }
        _ => Err(RegistryError::new(ErrorCode::Unsupported)
            .message("method not allowed on this endpoint")),
    }
}

/// Decode `%XX` and `+` in a query value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The repository called `name`, or `NAME_UNKNOWN`.
pub async fn existing_repository(
    state: &AppState,
    name: &berth_core::RepoName,
) -> Result<berth_db::entity::repositories::Model> {
    berth_db::repositories::find_by_name(&state.db.read, name.as_str())
        .await?
        .ok_or_else(|| {
            RegistryError::new(ErrorCode::NameUnknown)
                .message(format!("repository {name} not found"))
        })
}

/// Refuse writes to names that fit no existing project (Berth's naming rule) and to
/// projects whose registry is disabled.
pub async fn require_project(state: &AppState, name: &berth_core::RepoName) -> Result<()> {
    crate::projects::require_project(state.projects.as_ref(), name).await
}
