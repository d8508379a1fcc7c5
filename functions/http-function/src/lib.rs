//! What every HTTP function shares on the Lambda side, so that its `main` is one call and its
//! `handler` names only its method and what it does:
//!
//! - [`serve`] / [`serve_with_storage`]: tracing, the configuration read once, the database
//!   (and S3 client) opened while the runtime asks for the first event, then the Lambda loop; a
//!   request that arrives before the database could open answers the contract's 503.
//! - [`answer`]: the method check (405 with `Allow`) and the contract's JSON answer for an error.
//! - [`path_id`]: a numeric id from the router's path parameter or the raw path.
//!
//! `shared` stays free of Lambda types; this crate is the only place the two meet.

use std::future::Future;

use lambda_http::http::Method;
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};
use shared::app::{App, Starting};
use shared::config::{ConfigError, Env};
use shared::error::ApiError;
use shared::http as api;

/// A function's handler: `async fn handler(app: &App, req: Request) -> Result<Response<Body>, Error>`.
/// (A trait with the lifetime as a parameter lets the handler's future borrow the app.)
pub trait Handler<'a>: Sync {
    type Future: Future<Output = Result<Response<Body>, Error>> + Send + 'a;
    fn call(&self, app: &'a App, req: Request) -> Self::Future;
}

impl<'a, F, Fut> Handler<'a> for F
where
    F: Fn(&'a App, Request) -> Fut + Sync,
    Fut: Future<Output = Result<Response<Body>, Error>> + Send + 'a,
{
    type Future = Fut;
    fn call(&self, app: &'a App, req: Request) -> Fut {
        self(app, req)
    }
}

/// Runs a function that uses the database only. Nothing on this path reaches the S3 client, so
/// its binary does not carry the AWS SDK (LTO drops it).
pub async fn serve<H>(handler: H) -> Result<(), Error>
where
    H: for<'a> Handler<'a>,
{
    serve_from(Starting::from_env, handler).await
}

/// [`serve`] for a function that also uses object storage.
pub async fn serve_with_storage<H>(handler: H) -> Result<(), Error>
where
    H: for<'a> Handler<'a>,
{
    serve_from(Starting::with_storage_from_env, handler).await
}

async fn serve_from<H>(
    start: fn(&Env) -> Result<Starting<App>, ConfigError>,
    handler: H,
) -> Result<(), Error>
where
    H: for<'a> Handler<'a>,
{
    shared::telemetry::init();
    // A configuration that cannot be read stops the function before it takes an event.
    let starting =
        start(&Env::from_process()).inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    run(&starting, &handler).await
}

async fn run<H>(starting: &Starting<App>, handler: &H) -> Result<(), Error>
where
    H: for<'a> Handler<'a>,
{
    lambda_http::run(service_fn(move |req: Request| async move {
        match starting.ready().await {
            Ok(app) => handler.call(&app, req).await,
            Err(e) => Ok(api::finish(Err(e)).map(Body::from)),
        }
    }))
    .await
}

/// `handle(req)` when the request's method is `allowed` (405 with `Allow` otherwise), its error
/// as the contract's JSON body.
pub async fn answer<F>(
    req: Request,
    allowed: Method,
    handle: impl FnOnce(Request) -> F,
) -> Result<Response<Body>, Error>
where
    F: Future<Output = Result<api::Response, ApiError>>,
{
    if req.method() != allowed {
        return Ok(api::method_not_allowed(&allowed).map(Body::from));
    }
    Ok(api::finish(handle(req).await).map(Body::from))
}

/// The id in the path: the router's `{name}` parameter, or else the segment after `after` in the
/// raw path; `None` when it is missing or not a positive integer.
pub fn path_id(req: &Request, name: &str, after: &str) -> Option<i64> {
    let param = req.path_parameters_ref();
    api::path_id(param.and_then(|p| p.first(name)), req.uri().path(), after)
}
