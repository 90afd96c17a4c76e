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

/// GitLab's answer to a parameter of the wrong type or form: `"<key> is invalid"`.
fn invalid(key: &str) -> ApiError {
    ApiError::BadRequest(format!("{key} is invalid"))
}

impl Params {
    /// A text parameter (numbers and booleans as text, as Grape coerces them); empty or
    /// null counts as absent. A list or an object is `"<key> is invalid"` (400), as GitLab
    /// answers a wrongly typed field, never silently taken as absent.
    pub fn str(&self, key: &str) -> ApiResult<Option<String>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Array(_) | Value::Object(_)) => Err(invalid(key)),
        }
    }

    /// A required text parameter (`"name is missing"`).
    pub fn required(&self, key: &str) -> ApiResult<String> {
        self.str(key)?
            .ok_or_else(|| ApiError::BadRequest(format!("{key} is missing")))
    }

    /// An integer parameter, given as a number or text.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        let invalid = || invalid(key);
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(invalid),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
            Some(_) => Err(invalid()),
        }
    }

    /// A boolean parameter (`true`/`false`, `1`/`0`); any other number is invalid.
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(1) => Ok(Some(true)),
                Some(0) => Ok(Some(false)),
                _ => Err(invalid(key)),
            },
            // Case-insensitive as GitLab's (Grape's) coercion: python-gitlab sends `True`.
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "yes" | "t" | "on" => Ok(Some(true)),
                "false" | "0" | "no" | "f" | "off" => Ok(Some(false)),
                _ => Err(invalid(key)),
            },
            Some(_) => Err(invalid(key)),
        }
    }

    /// A list parameter: a JSON array of strings, `key[]=` repeats, or comma-separated
    /// text; null is absent. Anything else (a number, an object, an array holding a
    /// non-string) is `"<key> is invalid"`, not an empty list.
    pub fn list(&self, key: &str) -> ApiResult<Option<Vec<String>>> {
        let items: Vec<String> = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| invalid(key)))
                .collect::<ApiResult<_>>()?,
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_owned()).collect(),
            Some(_) => return Err(invalid(key)),
        };
        Ok(Some(items.into_iter().filter(|s| !s.is_empty()).collect()))
    }

    /// One of `values` (`"<key> does not have a valid value"` otherwise, GitLab's message
    /// for a value outside a parameter's list); absent is `None`.
    pub fn one_of(&self, key: &str, values: &[&'static str]) -> ApiResult<Option<&'static str>> {
        match self.str(key)? {
            None => Ok(None),
            Some(v) => values
                .iter()
                .find(|allowed| **allowed == v)
                .map(|allowed| Some(*allowed))
                .ok_or_else(|| ApiError::BadRequest(format!("{key} does not have a valid value"))),
        }
    }

    /// A date (`YYYY-MM-DD`, ending at midnight UTC of that date, as GitLab) or an RFC 3339
    /// time. `Some(None)`: given as null or empty (clear it).
    pub fn date(&self, key: &str) -> ApiResult<Option<Option<DateTime<Utc>>>> {
        let invalid = || invalid(key);
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
            Some(_) => return Err(invalid(key)),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Params {
        match v {
            Value::Object(o) => Params(o),
            _ => unreachable!("an object"),
        }
    }

    fn message(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn text_takes_scalars_and_refuses_lists_and_objects() {
        let p = params(json!({
            "s": "x", "n": 5, "b": true, "empty": "", "null": null,
            "list": ["x"], "object": {"a": 1},
        }));
        assert_eq!(p.str("s").unwrap().as_deref(), Some("x"));
        assert_eq!(p.str("n").unwrap().as_deref(), Some("5"));
        assert_eq!(p.str("b").unwrap().as_deref(), Some("true"));
        for absent in ["empty", "null", "missing"] {
            assert_eq!(p.str(absent).unwrap(), None, "{absent}");
        }
        assert_eq!(message(p.str("list").unwrap_err()), "list is invalid");
        assert_eq!(message(p.str("object").unwrap_err()), "object is invalid");
        assert_eq!(message(p.required("list").unwrap_err()), "list is invalid");
        assert_eq!(
            message(p.required("missing").unwrap_err()),
            "missing is missing"
        );
    }

    #[test]
    fn lists_refuse_other_types_and_non_string_items() {
        let p = params(json!({
            "ok": ["a", "b"], "csv": "a, b,", "null": null,
            "mixed": ["a", 5], "number": 7, "object": {"a": "b"},
        }));
        assert_eq!(p.list("ok").unwrap(), Some(vec!["a".into(), "b".into()]));
        assert_eq!(p.list("csv").unwrap(), Some(vec!["a".into(), "b".into()]));
        assert_eq!(p.list("null").unwrap(), None);
        assert_eq!(p.list("missing").unwrap(), None);
        for bad in ["mixed", "number", "object"] {
            assert_eq!(
                message(p.list(bad).unwrap_err()),
                format!("{bad} is invalid")
            );
        }
    }

    #[test]
    fn booleans_take_only_zero_and_one_as_numbers() {
        let p = params(json!({"one": 1, "zero": 0, "two": 2, "neg": -1, "text": "True"}));
        assert_eq!(p.bool("one").unwrap(), Some(true));
        assert_eq!(p.bool("zero").unwrap(), Some(false));
        assert_eq!(p.bool("text").unwrap(), Some(true));
        for bad in ["two", "neg"] {
            assert_eq!(
                message(p.bool(bad).unwrap_err()),
                format!("{bad} is invalid")
            );
        }
    }

    #[test]
    fn one_of_names_the_parameter() {
        let p = params(json!({"state": "active", "bad": "bogus"}));
        let values = &["active", "inactive"];
        assert_eq!(p.one_of("state", values).unwrap(), Some("active"));
        assert_eq!(p.one_of("missing", values).unwrap(), None);
        assert_eq!(
            message(p.one_of("bad", values).unwrap_err()),
            "bad does not have a valid value"
        );
    }
}
