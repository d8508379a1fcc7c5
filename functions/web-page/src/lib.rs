//! `GET /viral-clip`: the AI Viral Clip page; `GET /viral-clip/assets/<name>`: its script,
//! styles and images. Plain HTML/CSS/JS compiled into the binary: no build step, no CDN, no
//! external font — the page works offline. It signs in through `/auth/*` and calls the API on
//! its own origin.

use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::config::{ConfigError, Env};
use shared::error::ApiError;
use shared::http as api;
use shared::ingest::IngestConfig;

/// (path under `/viral-clip`, content type, content)
const FILES: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "/assets/app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "/assets/placeholder.svg",
        "image/svg+xml",
        include_str!("../assets/placeholder.svg"),
    ),
    (
        "/assets/icon.svg",
        "image/svg+xml",
        include_str!("../assets/icon.svg"),
    ),
];

/// The page as this deployment serves it: the direct-upload limit written into the HTML (files
/// above it take the large-upload flow) and a CSP that lets the page PUT to the object store.
#[derive(Debug, Clone)]
pub struct Page {
    index: String,
    csp: String,
}

impl Default for Page {
    fn default() -> Self {
        Self::new(IngestConfig::default().max_upload_bytes, AWS_S3_ORIGINS)
    }
}

/// Where presigned URLs point on AWS (path-style: `https://s3.<region>.amazonaws.com/...`).
const AWS_S3_ORIGINS: &str = "https://*.amazonaws.com";

impl Page {
    pub fn new(max_upload_bytes: u64, store_origin: &str) -> Self {
        Self {
            index: FILES[0]
                .2
                .replace("{{MAX_UPLOAD_BYTES}}", &max_upload_bytes.to_string()),
            csp: format!(
                "default-src 'self'; img-src 'self' https://i.ytimg.com data:; style-src 'self'; \
                 script-src 'self'; connect-src 'self' {store_origin}; frame-ancestors 'none'; \
                 base-uri 'none'"
            ),
        }
    }

    /// `MAX_UPLOAD_BYTES`, and `S3_ENDPOINT`'s origin (AWS S3 when unset).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max = IngestConfig::from_env(env)?.max_upload_bytes;
        let origin = match env.optional("S3_ENDPOINT") {
            None => AWS_S3_ORIGINS.to_owned(),
            Some(ep) => url::Url::parse(&ep)
                .ok()
                .filter(|u| u.has_host())
                .map(|u| u.origin().ascii_serialization())
                .ok_or_else(|| ConfigError::Invalid {
                    name: "S3_ENDPOINT",
                    reason: format!("{ep:?} is not an http(s) URL"),
                })?,
        };
        Ok(Self::new(max, &origin))
    }
}

pub async fn handler(page: &Page, req: Request) -> Result<Response<Body>, Error> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(api::method_not_allowed(&Method::GET).map(Body::from));
    }
    let path = req.uri().path();
    let rest = path
        .strip_prefix("/viral-clip")
        .unwrap_or(path)
        .trim_end_matches('/');
    let Some((_, content_type, content)) = FILES.iter().find(|(p, _, _)| *p == rest) else {
        let err = ApiError::NotFound("no such page or asset".into());
        return Ok(api::error_response(&err).map(Body::from));
    };
    let content = if rest.is_empty() {
        page.index.as_str()
    } else {
        content
    };
    let body = if req.method() == Method::HEAD {
        Body::Empty
    } else {
        Body::from(content.to_owned())
    };
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, *content_type)
        // small files, changed with each deploy: always revalidate
        .header(CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", page.csp.as_str())
        .body(body)?;
    Ok(resp)
}
