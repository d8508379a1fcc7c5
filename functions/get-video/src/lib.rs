//! `GET /viral-clip/videos/{video_id}`: one of the caller's videos with every job it had, newest
//! first; 404 otherwise (another user's video, a deleted or missing one, a malformed id alike).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::videos;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::GET, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let id = http_function::path_id(&req, "video_id", "videos").ok_or_else(videos::not_found)?;
    let conn = app.db.connect().await?;
    let detail = videos::detail(&conn, user_id, id).await?;
    Ok(api::json(StatusCode::OK, &detail))
}
