//! `GET /viral-clip/jobs/{job_id}`: the job's status and progress, when its video belongs to
//! the caller; 404 otherwise (another user's job, a missing job, a malformed id alike).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::repo::processing_jobs;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    if req.method() != Method::GET {
        return Ok(api::method_not_allowed(&Method::GET).map(Body::from));
    }
    Ok(api::finish(handle(app, &req).await).map(Body::from))
}

/// The `{job_id}` path parameter (from the router), or the path segment after `jobs`.
fn job_id(req: &Request) -> Option<i64> {
    let param = req.path_parameters_ref();
    api::path_id(
        param.and_then(|p| p.first("job_id")),
        req.uri().path(),
        "jobs",
    )
}

async fn handle(app: &App, req: &Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let not_found = || ApiError::NotFound("no such job".into());
    let id = job_id(req).ok_or_else(not_found)?;
    let conn = app.db.connect().await?;
    let job = processing_jobs::get_for_user(&conn, id, user_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(api::json(StatusCode::OK, &job))
}
