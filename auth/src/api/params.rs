//! Request and response helpers every `/api/v4` endpoint module shares: [`Params`] (query
//! string plus JSON or form body, as GitLab's Grape API reads them), [`paged`] listings with
//! GitLab's pagination headers, GitLab's time formats, and [`valid_path`].

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::pagination::PageParams;
use crate::state::AppState;

/// Request parameters: the query string, then the body (JSON object or
/// `application/x-www-form-urlencoded`, where `key[]=` repeats build a list), body winning.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Map<String, Value>);

fn merge_form(map: &mut Map<String, Value>, raw: &[u8]) {
    for (k, v) in form_urlencoded::parse(raw) {
        if let Some(key) = k.strip_suffix("[]") {
            let entry = map
                .entry(key.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(Value::String(v.into_owned()));
            }
        } else {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let mut map = Map::new();
        if let Some(q) = req.uri().query() {
            merge_form(&mut map, q.as_bytes());
        }
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::BadRequest("400 Bad request - unreadable body".into()))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params(map));
        }
        if json || body.first() == Some(&b'{') {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(o)) => map.extend(o),
                _ => {
                    return Err(ApiError::BadRequest(
                        "400 Bad request - invalid JSON".into(),
                    ));
                }
            }
        } else {
            merge_form(&mut map, &body);
        }
        Ok(Params(map))
    }
}

impl Params {
    /// A text parameter (numbers and booleans as text); empty counts as absent.
    pub fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A required text parameter (`"name is missing"`).
    pub fn required(&self, key: &str) -> ApiResult<String> {
        self.str(key)
            .ok_or_else(|| ApiError::BadRequest(format!("{key} is missing")))
    }

    /// An integer parameter, given as a number or text.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        let invalid = || ApiError::BadRequest(format!("{key} is invalid"));
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(invalid),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
            Some(_) => Err(invalid()),
        }
    }

    /// A boolean parameter (`true`/`false`, `1`/`0`).
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => Ok(Some(n.as_i64() != Some(0))),
            // Case-insensitive as GitLab's (Grape's) coercion: python-gitlab sends `True`.
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "yes" | "t" | "on" => Ok(Some(true)),
                "false" | "0" | "no" | "f" | "off" => Ok(Some(false)),
                _ => Err(ApiError::BadRequest(format!("{key} is invalid"))),
            },
            Some(_) => Err(ApiError::BadRequest(format!("{key} is invalid"))),
        }
    }

    /// A list parameter: a JSON array, `key[]=` repeats, or comma-separated text.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let items: Vec<String> = match self.0.get(key)? {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Value::String(s) => s.split(',').map(|x| x.trim().to_owned()).collect(),
            _ => return None,
        };
        Some(items.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// A date (`YYYY-MM-DD`, ending at midnight UTC of that date, as GitLab) or an RFC 3339
    /// time. `Some(None)`: given as null or empty (clear it).
    pub fn date(&self, key: &str) -> ApiResult<Option<Option<DateTime<Utc>>>> {
        let invalid = || ApiError::BadRequest(format!("{key} is invalid"));
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
            Some(Value::String(s)) => {
                if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    Ok(Some(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc())))
                } else {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| Some(Some(t.with_timezone(&Utc))))
                        .map_err(|_| invalid())
                }
            }
            Some(_) => Err(invalid()),
        }
    }

    /// A nested object parameter: a JSON object, or form keys `key[field]=…` (as Rails
    /// clients send a hash). `None` when neither is there.
    pub fn object(&self, key: &str) -> ApiResult<Option<Map<String, Value>>> {
        let mut out = match self.0.get(key) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => return Err(ApiError::BadRequest(format!("{key} is invalid"))),
        };
        let found = self.0.get(key).is_some_and(Value::is_object);
        let prefix = format!("{key}[");
        let mut nested = false;
        for (k, v) in &self.0 {
            if let Some(field) = k.strip_prefix(&prefix).and_then(|f| f.strip_suffix(']'))
                && !field.is_empty()
                && !field.contains(['[', ']'])
            {
                out.insert(field.to_owned(), v.clone());
                nested = true;
            }
        }
        Ok((found || nested).then_some(out))
    }

    /// `page` and `per_page`.
    pub fn page(&self) -> ApiResult<PageParams> {
        let positive = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        Ok(PageParams {
            page: positive(self.int("page")?),
            per_page: positive(self.int("per_page")?),
        })
    }
}

/// A page of a listing with GitLab's pagination headers. `uri` is the request URI as the
/// client sent it (`axum::extract::OriginalUri`, so `/api/v4/…`): the links need the full path.
pub fn paged(
    state: &AppState,
    uri: &Uri,
    page: PageParams,
    total: u64,
    items: Vec<Value>,
) -> Response {
    let headers = page.headers(&state.cfg.auth_url, uri, total);
    (headers, Json(Value::Array(items))).into_response()
}

/// A page of an in-memory listing.
pub fn paged_vec(state: &AppState, uri: &Uri, page: PageParams, all: Vec<Value>) -> Response {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(page.per_page()).unwrap_or(usize::MAX))
        .collect();
    paged(state, uri, page, total, items)
}

/// GitLab's time format (`2024-05-01T12:00:00.000Z`).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An optional time, or null.
pub fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

/// An optional expiry date (`YYYY-MM-DD`), or null.
pub fn opt_date(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.date_naive().format("%Y-%m-%d").to_string())
    })
}

/// A path segment in the registry's name grammar (`[a-z0-9]+([._-][a-z0-9]+)*`).
pub fn valid_path(segment: &str) -> bool {
    !segment.contains('/') && berth_core::RepoName::parse(segment).is_ok()
}
