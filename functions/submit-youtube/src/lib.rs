//! `POST /viral-clip/video/youtube`: a YouTube link and clip options → 201 with the new
//! `video_source` (pending) and its `processing_job` (queued). `Idempotency-Key` supported.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::ingest::youtube::{self, YoutubeSubmission};

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::POST, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let key = api::idempotency_key(req.headers())?;
    let submission = YoutubeSubmission::parse(api::json_object(req.headers(), req.body())?)?;
    let conn = app.db.connect().await?;
    let outcome = youtube::submit(&conn, &app.ingest, user_id, &submission, key).await?;
    Ok(outcome.into_response())
}
