//! HTTP plumbing shared by the function crates, on the `http` crate's types only (no Lambda
//! types): JSON responses, the error response, content-type checks, strict JSON-object reading
//! and the headers every route reads.

use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldErrors};

pub type Response = http::Response<String>;

/// Largest JSON body any route accepts.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => with_json_type(status, text),
        Err(e) => error_response(&ApiError::internal(e)),
    }
}

/// A JSON text already rendered (a stored answer, say) as a response.
pub fn json_text(status: StatusCode, text: String) -> Response {
    with_json_type(status, text)
}

/// `204 No Content`: done, nothing to say.
pub fn no_content() -> Response {
    let mut resp = http::Response::new(String::new());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

fn with_json_type(status: StatusCode, text: String) -> Response {
    let mut resp = http::Response::new(text);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

/// The contract's error response, with `WWW-Authenticate` on 401 and `Retry-After` on 429 and
/// 503.
pub fn error_response(err: &ApiError) -> Response {
    let mut resp = with_json_type(err.status(), err.body().to_string());
    if let ApiError::Unauthorized(_) = err {
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(seconds) = err.retry_after_seconds() {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    resp
}

/// A handler's result as a response; errors are logged (5xx with their cause chain).
pub fn finish(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|err| {
        err.log();
        error_response(&err)
    })
}

/// The media type of `Content-Type`, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = raw.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// Reads a JSON-object body: 400 for a wrong content type or malformed JSON, 413 for an
/// oversized body, 422 when the JSON is not an object.
pub fn json_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if media_type(headers).as_deref() != Some("application/json") {
        return Err(ApiError::BadRequest(
            "this route takes a JSON body: send Content-Type: application/json".into(),
        ));
    }
    if body.len() > MAX_JSON_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the JSON body is larger than {} KiB",
            MAX_JSON_BODY_BYTES / 1024
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON ({e})")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::field("body", "must be a JSON object")),
    }
}

/// Strict reading of a JSON object: every field is taken by name and type, every problem is
/// collected, and [`Fields::finish`] reports fields nobody took as unknown.
pub struct Fields {
    map: Map<String, Value>,
    pub errors: FieldErrors,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: FieldErrors::new(),
        }
    }

    /// A string field; `null` counts as absent.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.errors.add(name, "must be a string");
                None
            }
        }
    }

    /// A required string field.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        let present = self.map.get(name).is_some_and(|v| !v.is_null());
        let value = self.string(name);
        if !present {
            self.errors.add(name, "is required");
        }
        value
    }

    /// A boolean field; `null` counts as absent.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.errors.add(name, "must be true or false");
                None
            }
        }
    }

    /// A whole-number field; `null` counts as absent.
    pub fn u64(&mut self, name: &str) -> Option<u64> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(_) => {
                self.errors.add(name, "must be a whole number of 0 or more");
                None
            }
        }
    }

    /// Whether the field is there and not `null` (without taking it).
    pub fn is_present(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_null())
    }

    /// Takes a raw field as it is.
    pub fn raw(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// Reports every field not taken as unknown; `Err` with all problems found.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let unknown: Vec<String> = self.map.keys().cloned().collect();
        for name in unknown {
            self.errors.add(name, "is not a known field");
        }
        self.errors.into_result()
    }
}

/// A resource id from a path: digits only (no sign, spaces or leading `+`), above zero.
pub fn parse_id(raw: &str) -> Option<i64> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// A path's id: the router's path parameter when there is one, else the segment after
/// `after` in the path (`/viral-clip/video/uploads/7/complete`, `uploads` → 7).
pub fn path_id(param: Option<&str>, path: &str, after: &str) -> Option<i64> {
    parse_id(param.or_else(|| segment_after(path, after))?)
}

/// The path segment right after `name` (`/viral-clip/video/uploads/7/complete`, `uploads` →
/// `7`): the id when no router filled in the path parameters.
pub fn segment_after<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let mut segments = path.split('/');
    segments.by_ref().find(|s| *s == name)?;
    segments.next()
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let raw = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("sign in first: send Authorization: Bearer <token>".into())
    })?;
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is malformed".into()))?;
    let (scheme, token) = raw.trim().split_once(' ').unwrap_or((raw, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized(
            "the Authorization header must be: Bearer <token>".into(),
        ));
    }
    Ok(token)
}

/// The optional `Idempotency-Key` header: 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().map(str::trim).unwrap_or("");
    let valid =
        !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if valid {
        Ok(Some(key.to_owned()))
    } else {
        Err(ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
        ))
    }
}

/// The decoded `name=value` pairs of a URI's query string.
pub fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// 405 for a method the route does not take.
pub fn method_not_allowed(allowed: &http::Method) -> Response {
    let body = serde_json::json!({"error": {
        "code": "method_not_allowed",
        "message": format!("this route only takes {allowed}"),
    }});
    let mut resp = with_json_type(StatusCode::METHOD_NOT_ALLOWED, body.to_string());
    if let Ok(v) = HeaderValue::from_str(allowed.as_str()) {
        resp.headers_mut().insert(http::header::ALLOW, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_json_body_needs_the_json_content_type_and_valid_json() {
        let json_type = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert!(json_object(&json_type, br#"{"a": 1}"#).is_ok());
        let err =
            json_object(&headers(&[("content-type", "text/plain")]), br#"{"a":1}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = json_object(&json_type, b"{not json").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = json_object(&json_type, b"[1, 2]").unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn fields_collects_every_problem_including_unknown_fields() {
        let map = serde_json::from_str(r#"{"a": 1, "b": "x", "extra": true}"#).unwrap();
        let mut f = Fields::new(map);
        assert_eq!(f.string("a"), None);
        assert_eq!(f.bool("b"), None);
        assert_eq!(f.required_string("c"), None);
        let Err(ApiError::Validation(errors)) = f.finish() else {
            panic!("expected 422")
        };
        assert_eq!(errors.get("a"), Some("must be a string"));
        assert_eq!(errors.get("b"), Some("must be true or false"));
        assert_eq!(errors.get("c"), Some("is required"));
        assert_eq!(errors.get("extra"), Some("is not a known field"));
    }

    #[test]
    fn bearer_tokens_and_idempotency_keys_are_read_strictly() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc")])).unwrap(),
            "abc"
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer  abc ")])).unwrap(),
            "abc"
        );
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            assert!(
                bearer_token(&headers(&[("authorization", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(bearer_token(&HeaderMap::new()).is_err());
        assert_eq!(
            idempotency_key(&headers(&[("idempotency-key", "k-1")])).unwrap(),
            Some("k-1".into())
        );
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        let long = "x".repeat(256);
        assert!(idempotency_key(&headers(&[("idempotency-key", &long)])).is_err());
        assert!(idempotency_key(&headers(&[("idempotency-key", "two words")])).is_err());
    }
}
