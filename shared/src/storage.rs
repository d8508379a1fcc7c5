//! Object storage: any S3-compatible endpoint through `aws-sdk-s3` (AWS S3, MinIO, Garage, the
//! embedded s3s-fs of the local stack), with the client settings that work on all of them.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use crate::config::{ConfigError, Env};
use crate::error::ApiError;

#[derive(Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `S3_ENDPOINT`: unset for AWS S3; e.g. `http://127.0.0.1:9100` for a local store.
    pub endpoint: Option<String>,
    /// `S3_BUCKET` (required).
    pub bucket: String,
    /// `S3_REGION` (default `us-east-1`).
    pub region: String,
    /// Fixed credentials (tests); `None` uses the standard AWS chain (`AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`, the function's role, …).
    pub static_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl StorageConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let endpoint = env.optional("S3_ENDPOINT");
        if let Some(ep) = &endpoint {
            let ok = url::Url::parse(ep)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ConfigError::Invalid {
                    name: "S3_ENDPOINT",
                    reason: format!("{ep:?} is not an http(s) URL"),
                });
            }
        }
        Ok(Self {
            endpoint,
            bucket: env.required("S3_BUCKET")?,
            region: env
                .optional("S3_REGION")
                .unwrap_or_else(|| "us-east-1".into()),
            static_credentials: None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Unreachable, timed out or overloaded: a 503 for the caller.
    #[error("object storage unavailable: {0}")]
    Unavailable(String),
    /// Refused for another reason (permissions, missing bucket): a 500, logged.
    #[error("object storage refused the request: {0}")]
    Failed(String),
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(_) => ApiError::unavailable("video storage", e),
            StorageError::Failed(_) => ApiError::internal(e),
        }
    }
}

fn classify<E>(err: SdkError<E, HttpResponse>) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text = crate::error::CauseChain(&err).to_string();
    let server_error = err
        .raw_response()
        .is_some_and(|r| r.status().is_server_error());
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StorageError::Unavailable(text)
        }
        SdkError::ServiceError(_) if server_error => StorageError::Unavailable(text),
        _ => StorageError::Failed(text),
    }
}

/// A bucket and the client to reach it; built once per cold start.
#[derive(Clone)]
pub struct Storage {
    client: Client,
    bucket: String,
}

impl Storage {
    pub async fn connect(cfg: &StorageConfig) -> Self {
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build();
        let mut builder = match &cfg.static_credentials {
            // Tests and tools: nothing read from the environment.
            Some((key, secret)) => aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .credentials_provider(Credentials::new(key, secret, None, None, "static")),
            None => {
                let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(Region::new(cfg.region.clone()))
                    .load()
                    .await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        builder = builder
            .region(Region::new(cfg.region.clone()))
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(timeouts);
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(builder.build()),
            bucket: cfg.bucket.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores a video at `key` (`Content-Type: video/mp4`).
    pub async fn put_video(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("video/mp4")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// A new object key for a user's video: `videos/<user_id>/<uuid>.mp4`. Nothing in it comes
/// from the user's input.
pub fn new_video_key(user_id: i64) -> String {
    format!("videos/{user_id}/{}.mp4", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_required_form() {
        let key = new_video_key(42);
        let rest = key.strip_prefix("videos/42/").unwrap();
        let uuid = rest.strip_suffix(".mp4").unwrap();
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{key}");
        assert_ne!(new_video_key(42), key);
    }

    #[test]
    fn config_needs_a_bucket_and_a_valid_endpoint() {
        let err = StorageConfig::from_env(&Env::from_pairs([])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "S3_BUCKET" });
        let err = StorageConfig::from_env(&Env::from_pairs([
            ("S3_BUCKET", "b"),
            ("S3_ENDPOINT", "localhost:9000"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("S3_ENDPOINT"));
        let cfg = StorageConfig::from_env(&Env::from_pairs([("S3_BUCKET", "b")])).unwrap();
        assert_eq!(
            (cfg.region.as_str(), cfg.endpoint.as_deref()),
            ("us-east-1", None)
        );
    }
}
