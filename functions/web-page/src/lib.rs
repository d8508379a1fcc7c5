//! `GET /viral-clip`: the AI Viral Clip page; `GET /viral-clip/assets/<name>`: its script,
//! styles and images. Plain HTML/CSS/JS compiled into the binary: no build step, no CDN, no
//! external font — the page works offline. It signs in through `/auth/*` and calls the API on
//! its own origin.

use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::error::ApiError;
use shared::http as api;

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

pub async fn handler(req: Request) -> Result<Response<Body>, Error> {
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
    let body = if req.method() == Method::HEAD {
        Body::Empty
    } else {
        Body::from(*content)
    };
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, *content_type)
        // small files, changed with each deploy: always revalidate
        .header(CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .header(
            "content-security-policy",
            "default-src 'self'; img-src 'self' https://i.ytimg.com data:; style-src 'self'; \
             script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .body(body)?;
    Ok(resp)
}
