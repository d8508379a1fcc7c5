//! `GET /viral-clip/videos?limit=&cursor=&status=`: the caller's videos, newest first, each with
//! its latest job, and the cursor of the next page.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::app::App;
use shared::error::ApiError;
use shared::history::{self, HistoryQuery};
use shared::http as api;

pub async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error> {
    http_function::answer(req, Method::GET, |req| handle(app, req)).await
}

async fn handle(app: &App, req: Request) -> Result<api::Response, ApiError> {
    let user_id = app.auth.authenticate(req.headers())?;
    let pairs = api::query_pairs(req.uri());
    let query = HistoryQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let conn = app.db.connect().await?;
    let page = history::page(&conn, user_id, &query).await?;
    Ok(api::json(StatusCode::OK, &page))
}
