//! `GET /viral-clip/jobs/{job_id}`: the job's status and progress, when its video belongs to
//! the caller; 404 otherwise (another user's job, a missing job, a malformed id alike).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::repo::processing_jobs;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::GET, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let not_found = || ApiError::NotFound("no such job".into());
    let id = http_function::path_id(&req, "job_id", "jobs").ok_or_else(not_found)?;
    let conn = app.db.connect().await?;
    let job = processing_jobs::get_for_user(&conn, id, user_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(api::json(StatusCode::OK, &job))
}
