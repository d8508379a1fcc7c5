//! The one error type of the HTTP API, mapped to the contract's status codes and JSON shape:
//! `{"error": {"code": "...", "message": "...", "details": {...}}}`.
//!
//! A 500 logs its whole cause chain and shows the caller nothing internal.

use std::collections::BTreeMap;
use std::fmt;

use http::StatusCode;
use serde_json::json;

use crate::db::DbError;
use crate::media::MediaError;

/// Per-field validation messages, for `details.fields`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` for `field` (the first message for a field wins).
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `Ok(())` when nothing was recorded, else a 422 naming every field.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for FieldErrors {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut errors = Self::new();
        for (k, v) in iter {
            errors.add(k, v);
        }
        errors
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: not JSON, not a multipart form, wrong content type.
    #[error("{0}")]
    BadRequest(String),
    /// 401, with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such resource for this caller.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 with `details.fields`.
    #[error("some fields are invalid")]
    Validation(FieldErrors),
    /// 429 with `Retry-After`: one of the caller's limits is reached (failed sign-ins of an
    /// email, a quota); `details` names it (`limit`) and says when to ask again.
    #[error("{message}")]
    RateLimited {
        message: String,
        limit: &'static str,
        retry_after_seconds: u64,
    },
    /// 503 with `Retry-After`: the database or object storage cannot be reached right now.
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// 500: a bug or a misconfiguration. The source is logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::from_iter([(field.into(), message.into())]))
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    pub fn unavailable(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            message: format!("the {what} is unavailable right now; try again in a few seconds"),
            source: Some(Box::new(e)),
        }
    }

    /// Seconds the caller should wait before asking again (`Retry-After`), for a 429 or a 503.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            Self::Unavailable { .. } => Some(RETRY_AFTER_SECONDS.into()),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Validation(_) => "validation_failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The contract's error body.
    pub fn body(&self) -> serde_json::Value {
        let message = match self {
            Self::Internal(_) => "something went wrong on our side; please try again".to_owned(),
            Self::Validation(fields) => {
                let names: Vec<&str> = fields.fields().map(|(k, _)| k).collect();
                format!("please correct: {}", names.join(", "))
            }
            other => other.to_string(),
        };
        let mut error = json!({ "code": self.code(), "message": message });
        if let Self::Validation(fields) = self {
            let fields: serde_json::Map<String, serde_json::Value> = fields
                .fields()
                .map(|(k, v)| (k.to_owned(), v.into()))
                .collect();
            error["details"] = json!({ "fields": fields });
        }
        if let Self::RateLimited {
            limit,
            retry_after_seconds,
            ..
        } = self
        {
            error["details"] =
                json!({ "limit": limit, "retry_after_seconds": retry_after_seconds });
        }
        json!({ "error": error })
    }

    /// Logs what an operator needs: the full cause chain of 5xx errors.
    pub fn log(&self) {
        match self {
            Self::Internal(_) | Self::Unavailable { .. } => {
                tracing::error!(status = self.status().as_u16(), error = %CauseChain(self), "request failed");
            }
            _ => tracing::info!(
                status = self.status().as_u16(),
                code = self.code(),
                "request refused"
            ),
        }
    }
}

/// `error: cause: cause` for logs.
pub struct CauseChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for CauseChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            Self::unavailable("database", e)
        } else {
            Self::internal(e)
        }
    }
}

impl ApiError {
    /// A write's database error as the API answers it: a write that names a user row that is
    /// gone (a valid token of a deleted account) is a 401.
    pub fn from_write(e: DbError) -> Self {
        if e.is_foreign_key_violation() {
            Self::Unauthorized("your account no longer exists; sign up or sign in again".into())
        } else {
            e.into()
        }
    }
}

impl From<MediaError> for ApiError {
    /// A file that is not a video is a 415; a damaged one a 422 on `file`.
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::NotAVideo(msg) => {
                Self::UnsupportedMediaType(format!("{msg}: upload an MP4 or MOV video"))
            }
            MediaError::Damaged(msg) => {
                Self::field("file", format!("cannot be read as a video: {msg}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_error_names_every_field_in_details() {
        let err = ApiError::Validation(FieldErrors::from_iter([
            ("aspect_ratio", "must be one of 9:16, 1:1, 16:9, 4:5"),
            ("subtitle", "must be true or false"),
        ]));
        let body = err.body();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(
            body["error"]["details"]["fields"]["aspect_ratio"],
            "must be one of 9:16, 1:1, 16:9, 4:5"
        );
        assert_eq!(
            body["error"]["details"]["fields"]["subtitle"],
            "must be true or false"
        );
    }

    #[test]
    fn an_internal_error_shows_nothing_internal() {
        let err = ApiError::internal(std::io::Error::other(
            "SELECT secret FROM /var/lib/db.sqlite",
        ));
        let text = err.body().to_string();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!text.contains("SELECT") && !text.contains("/var"), "{text}");
    }
}
