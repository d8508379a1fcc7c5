//! `POST /viral-clip/video/uploads/{upload_id}/complete`: joins the parts, checks the stored
//! object (size, leading bytes, duration from `mvhd` by ranged reads) and creates the video and
//! its queued job → 201 with the same body as the direct upload. A repeat answers the same.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::uploads::{self, CompleteRequest};

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    if req.method() != Method::POST {
        return Ok(api::method_not_allowed(&Method::POST).map(Body::from));
    }
    Ok(api::finish(handle(app, &req).await).map(Body::from))
}

async fn handle(app: &App, req: &Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let param = req.path_parameters_ref();
    let id = api::path_id(
        param.and_then(|p| p.first("upload_id")),
        req.uri().path(),
        "uploads",
    )
    .ok_or_else(|| ApiError::NotFound("no such upload".into()))?;
    let body = CompleteRequest::parse(req.headers(), req.body())?;
    let conn = app.db.connect().await?;
    let storage = app.storage()?;
    let done = uploads::complete(&conn, storage, &app.ingest, user_id, id, &body).await?;
    Ok(done.into_response())
}
