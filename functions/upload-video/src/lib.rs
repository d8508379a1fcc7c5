//! `POST /viral-clip/video/upload`: a multipart form with a `file` (MP4/MOV) and clip options →
//! the object is stored at `videos/<user_id>/<uuid>.mp4`, then 201 with the new video and job.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::ingest::direct_upload::{self, UploadForm};

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::POST, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let key = api::idempotency_key(req.headers())?;
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    let form = UploadForm::parse(&parts.headers, body.into(), app.ingest.max_upload_bytes).await?;
    let conn = app.db.connect().await?;
    let outcome =
        direct_upload::upload(&conn, app.storage()?, &app.ingest, user_id, &form, key).await?;
    Ok(outcome.into_response())
}
