//! `DELETE /viral-clip/video/uploads/{upload_id}`: aborts an unfinished large upload and
//! removes its parts and object → 204. A completed upload cannot be aborted (409).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::uploads;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    if req.method() != Method::DELETE {
        return Ok(api::method_not_allowed(&Method::DELETE).map(Body::from));
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
    let conn = app.db.connect().await?;
    uploads::abort(&conn, app.storage()?, user_id, id).await?;
    let mut resp = api::Response::new(String::new());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
