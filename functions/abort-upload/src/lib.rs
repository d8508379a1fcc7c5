//! `DELETE /viral-clip/video/uploads/{upload_id}`: aborts an unfinished large upload and
//! removes its parts and object → 204. A completed upload cannot be aborted (409).

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::ingest::upload_end;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::DELETE, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let id = http_function::path_id(&req, "upload_id", "uploads")
        .ok_or_else(upload_end::no_such_upload)?;
    let conn = app.db.connect().await?;
    upload_end::abort(&conn, app.storage()?, user_id, id).await?;
    Ok(api::no_content())
}
