//! `POST /viral-clip/video/uploads/{upload_id}/complete`: joins the parts, checks the stored
//! object (size, leading bytes, duration from `mvhd` by ranged reads) and creates the video and
//! its queued job → 201 with the same body as the direct upload. A repeat answers the same.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::ingest::upload_complete::{self, CompleteRequest};
use shared::ingest::upload_end;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::POST, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let id = http_function::path_id(&req, "upload_id", "uploads")
        .ok_or_else(upload_end::no_such_upload)?;
    let body = CompleteRequest::parse(req.headers(), req.body())?;
    let conn = app.db.connect().await?;
    let storage = app.storage()?;
    let done = upload_complete::complete(&conn, storage, &app.ingest, user_id, id, &body).await?;
    Ok(done.into_response())
}
