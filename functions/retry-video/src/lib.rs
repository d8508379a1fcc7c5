//! `POST /viral-clip/videos/{video_id}/retry`: a failed video of the caller's gets a new queued
//! job with the same options and is `pending` again → 201 with both; 409 unless it is `failed`.
//! `Idempotency-Key` supported. The request body is not read.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::videos;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::POST, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let key = api::idempotency_key(req.headers())?;
    let id = http_function::path_id(&req, "video_id", "videos").ok_or_else(videos::not_found)?;
    let conn = app.db.connect().await?;
    let outcome = videos::retry(&conn, &app.ingest, user_id, id, key).await?;
    Ok(outcome.into_response())
}
