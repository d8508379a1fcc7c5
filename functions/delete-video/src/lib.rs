//! `DELETE /viral-clip/videos/{video_id}`: the caller's video leaves its history, its queued job
//! is cancelled (a running one stops at its next progress write) and its object leaves the
//! store → 204; 404 for anything that is not one of the caller's videos.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::videos;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::DELETE, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let id = http_function::path_id(&req, "video_id", "videos").ok_or_else(videos::not_found)?;
    let conn = app.db.connect().await?;
    videos::delete(&conn, app.storage()?, user_id, id).await?;
    Ok(api::no_content())
}
