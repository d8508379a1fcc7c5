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

/// The `{job_id}` path parameter (from the router), or the path's last segment.
fn job_id(req: &Request) -> Option<i64> {
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first("job_id").map(str::to_owned))
        .or_else(|| req.uri().path().rsplit('/').next().map(str::to_owned))?;
    // digits only: no sign, no spaces, no leading '+'
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|id| *id > 0)
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
