//! Object storage: any S3-compatible endpoint through `aws-sdk-s3` (AWS S3, MinIO, Garage, the
//! embedded s3s-fs of the local stack), with the client settings that work on all of them.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    Credentials, HttpClient, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    RuntimeComponents, SharedHttpClient,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};
use bytes::Bytes;
use chrono::{DateTime, Utc};

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
    /// Keys used as they are: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` when both are set
    /// (Lambda sets them to the function role's session), or fixed keys in tests. `None` builds
    /// the AWS default chain (profile files, SSO, web identity, container and instance roles),
    /// which costs cold-start time (it builds an STS client and a second TLS setup).
    pub static_credentials: Option<(String, String)>,
    /// `AWS_SESSION_TOKEN`, which goes with role keys such as Lambda's.
    pub session_token: Option<String>,
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
            static_credentials: env
                .optional("AWS_ACCESS_KEY_ID")
                .zip(env.optional("AWS_SECRET_ACCESS_KEY")),
            session_token: env.optional("AWS_SESSION_TOKEN"),
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

/// The SDK's HTTPS client (hyper, rustls, proxy settings from the environment), built on the S3
/// client's first request instead of with the client. Its TLS runs on `ring`, the provider the
/// libSQL remote client already carries: one crypto library in the binary instead of two (the
/// SDK's default, aws-lc, would also be compiled from C). The SDK's own default client is
/// switched off in Cargo.toml. Building it reads and parses the whole CA bundle; a cold start
/// whose request never reaches S3 (a refused token, bad input, presigning an upload URL) does
/// not pay for it, and one that does pays it beside a TLS handshake that costs far more.
#[derive(Debug, Default)]
struct LazyHttpsClient {
    client: OnceLock<SharedHttpClient>,
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        use aws_smithy_http_client::proxy::ProxyConfig;
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        use aws_smithy_http_client::{Builder, ConnectorBuilder};
        self.client
            .get_or_init(|| {
                Builder::new().build_with_connector_fn(|settings, components| {
                    let mut connector = ConnectorBuilder::default()
                        .tls_provider(Provider::Rustls(CryptoMode::Ring));
                    connector.set_connector_settings(settings.cloned());
                    if let Some(components) = components {
                        connector.set_sleep_impl(components.sleep_impl());
                    }
                    connector.set_proxy_config(Some(ProxyConfig::from_env()));
                    connector.build()
                })
            })
            .http_connector(settings, components)
    }
}

/// A [`Storage`] given, or connected on first use. The scheduled worker wakes every minute and
/// mostly finds no upload to clean: it builds its S3 client only when one needs cleaning.
pub enum LazyStorage {
    Ready(Storage),
    OnFirstUse(StorageConfig, tokio::sync::OnceCell<Storage>),
}

impl LazyStorage {
    pub fn on_first_use(cfg: StorageConfig) -> Self {
        Self::OnFirstUse(cfg, tokio::sync::OnceCell::new())
    }

    /// The storage, connected now if it was not yet.
    pub async fn get(&self) -> &Storage {
        match self {
            Self::Ready(storage) => storage,
            Self::OnFirstUse(cfg, cell) => cell.get_or_init(|| Storage::connect(cfg)).await,
        }
    }

    /// Whether the S3 client has been built.
    pub fn is_connected(&self) -> bool {
        match self {
            Self::Ready(_) => true,
            Self::OnFirstUse(_, cell) => cell.initialized(),
        }
    }
}

impl From<Storage> for LazyStorage {
    fn from(storage: Storage) -> Self {
        Self::Ready(storage)
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
        // One HTTPS client for the S3 client and, without static keys, the credentials chain
        // (STS, instance metadata): built once, its CA bundle read once.
        let https = SharedHttpClient::new(LazyHttpsClient::default());
        let mut builder = match &cfg.static_credentials {
            // Keys given (Lambda's role session, tests): no provider chain to build.
            Some((key, secret)) => aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .credentials_provider(Credentials::new(
                    key,
                    secret,
                    cfg.session_token.clone(),
                    None,
                    "static",
                )),
            None => {
                let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(https.clone())
                    .region(Region::new(cfg.region.clone()))
                    .load()
                    .await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        builder = builder
            .http_client(https)
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

/// S3's limits on multipart parts: at least 5 MiB (but the last), at most 5 GiB, 10,000 parts.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;

/// One uploaded part of a multipart upload, as CompleteMultipartUpload takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTag {
    pub part_number: i32,
    /// `None` where the store does not list ETags (s3s-fs); AWS always does.
    pub etag: Option<String>,
}

/// Why a multipart upload could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// The store refused the parts given (missing, too small, wrong ETag, unknown upload):
    /// the client can fix this.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Storage {
    /// A presigned URL that PUTs one whole object at `key`, signed at `signed_at` and valid for
    /// `ttl` from then.
    pub async fn presign_put(
        &self,
        key: &str,
        signed_at: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(signed_at, ttl)?)
            .await
            .map_err(classify)?;
        Ok(req.uri().to_owned())
    }

    /// Starts a multipart upload at `key` (`Content-Type: video/mp4`); returns its id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("video/mp4")
            .send()
            .await
            .map_err(classify)?;
        out.upload_id
            .ok_or_else(|| StorageError::Failed("the store gave no multipart upload id".into()))
    }

    /// A presigned URL that PUTs part `part_number` of a multipart upload, signed at `signed_at`
    /// and valid for `ttl` from then.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        signed_at: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .presigned(presigning(signed_at, ttl)?)
            .await
            .map_err(classify)?;
        Ok(req.uri().to_owned())
    }

    /// The parts uploaded so far, by part number.
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartTag>, CompleteError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(multipart_error)?;
            for p in out.parts() {
                if let Some(n) = p.part_number() {
                    parts.push(PartTag {
                        part_number: n,
                        etag: p.e_tag().map(str::to_owned),
                    });
                }
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) if Some(next) != marker.as_deref() => {
                    marker = Some(next.to_owned());
                }
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        parts.dedup_by_key(|p| p.part_number);
        Ok(parts)
    }

    /// Joins the parts into the object.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartTag],
    ) -> Result<(), CompleteError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let parts = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.part_number)
                    .set_e_tag(p.etag.clone())
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(multipart_error)
    }

    /// Abandons a multipart upload and its parts; an unknown upload is fine (already gone).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if service_code(&e).is_some_and(|c| c == "NoSuchUpload") => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// The object's size, or `None` when there is no object at `key`.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// `len` bytes of the object from `start` (a ranged GET; only those bytes cross the wire).
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, StorageError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(classify)?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Unavailable(format!("reading {key}: {e}")))?
            .into_bytes();
        if bytes.len() as u64 != len {
            return Err(StorageError::Failed(format!(
                "asked for {len} bytes of {key} from {start}, got {}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

fn presigning(
    signed_at: DateTime<Utc>,
    ttl: Duration,
) -> Result<aws_sdk_s3::presigning::PresigningConfig, StorageError> {
    aws_sdk_s3::presigning::PresigningConfig::builder()
        .start_time(signed_at.into())
        .expires_in(ttl)
        .build()
        .map_err(|e| StorageError::Failed(format!("presigning: {e}")))
}

fn service_code<E>(err: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// A store's 4xx answer to a multipart call is the client's to fix; the rest is the store's.
fn multipart_error<E>(err: SdkError<E, HttpResponse>) -> CompleteError
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    let client_error = err
        .raw_response()
        .is_some_and(|r| r.status().is_client_error() && r.status().as_u16() != 403);
    if matches!(err, SdkError::ServiceError(_)) && client_error {
        let code = service_code(&err).unwrap_or("refused").to_owned();
        let message = match &err {
            SdkError::ServiceError(e) => e.err().message().unwrap_or("").to_owned(),
            _ => String::new(),
        };
        return CompleteError::Refused(
            format!("{code}: {message}")
                .trim_end_matches([' ', ':'])
                .to_owned(),
        );
    }
    CompleteError::Storage(classify(err))
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

    #[tokio::test]
    async fn an_https_endpoint_that_does_not_speak_tls_is_unavailable_not_a_panic() {
        // Arrange: a server that answers a TLS ClientHello in plain text.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                use std::io::Write;
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let storage = Storage::connect(&StorageConfig {
            endpoint: Some(format!("https://{addr}")),
            bucket: "b".into(),
            region: "us-east-1".into(),
            static_credentials: Some(("key".into(), "secret".into())),
            session_token: None,
        })
        .await;

        // Act: the first request builds the HTTPS client (rustls on ring) and shakes hands.
        let err = storage
            .put_video("videos/1/x.mp4", Bytes::from_static(b"x"))
            .await
            .unwrap_err();

        // Assert
        assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("TLS handshake"), "{err}");
    }

    #[test]
    fn keys_in_the_environment_are_used_as_they_are_with_their_session_token() {
        let lambda = StorageConfig::from_env(&Env::from_pairs([
            ("S3_BUCKET", "b"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]))
        .unwrap();
        assert_eq!(
            lambda.static_credentials,
            Some(("ASIAEXAMPLE".to_owned(), "secret".to_owned()))
        );
        assert_eq!(lambda.session_token.as_deref(), Some("token"));

        // A key without its secret is not a credential: the default chain decides.
        let half = StorageConfig::from_env(&Env::from_pairs([
            ("S3_BUCKET", "b"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ]))
        .unwrap();
        assert_eq!(half.static_credentials, None);
    }
}
