//! `POST /viral-clip/video/uploads`: a file's name, size and type and the clip options → 201
//! with presigned PUT URL(s) straight to object storage (one for a small file, S3 multipart
//! parts for a large one, up to 10 GiB) and when they expire.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::http as api;
use shared::ingest::upload_plan::{self, StartRequest};

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::POST, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let start = StartRequest::parse(api::json_object(req.headers(), req.body())?)?;
    let conn = app.db.connect().await?;
    let started = upload_plan::start(&conn, app.storage()?, &app.ingest, user_id, &start).await?;
    Ok(api::json(StatusCode::CREATED, &started))
}
