//! `POST /auth/login`: `{"email", "password"}` → 200 with the user and a token; one 401 for a
//! wrong email and a wrong password alike.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::auth::{self, Credentials};
use shared::error::ApiError;
use shared::http as api;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::POST, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let creds = Credentials::parse(api::json_object(req.headers(), req.body())?, false)?;
    let conn = app.db.connect().await?;
    let session = auth::login(&conn, &app.auth, creds).await?;
    Ok(api::json(StatusCode::OK, &session))
}
