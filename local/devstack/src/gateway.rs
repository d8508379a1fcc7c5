//! The local stand-in for API Gateway (HTTP API, payload format 2.0) in front of Lambda.
//!
//! Each function gets its own Lambda Runtime API (the `2018-06-01` endpoints the
//! `lambda_runtime` crate polls) on a port of its own, and a pool of instances: processes of
//! its debug binary, respawned when they die, each taking one invocation at a time, as Lambda
//! runs them. HTTP requests are matched against the routes (`METHOD /path/{param}`), turned
//! into payload 2.0 events (bodies that are not UTF-8 text go base64-encoded, as API Gateway
//! sends them), queued for the function, and its response turned back into HTTP. An
//! invocation that outlives its timeout is answered 504, as API Gateway does.
//! `POST /2015-03-31/functions/{name}/invocations` invokes a function with a raw event (the
//! worker's schedule), as the Lambda Invoke API does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Mutex};

type Reply = Response<Full<Bytes>>;
type Outcome = Result<Bytes, String>;

/// `METHOD /path/{param}` → function, from `[workspace.metadata.lambda.watch.router]`.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
}

impl Route {
    /// The path parameters when `path` matches this route's template.
    fn matches(&self, path: &str) -> Option<Map<String, Value>> {
        let want: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let got: Vec<&str> = path.trim_matches('/').split('/').collect();
        if want.len() != got.len() {
            return None;
        }
        let mut params = Map::new();
        for (w, g) in want.iter().zip(&got) {
            match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !g.is_empty() => {
                    params.insert(name.to_owned(), Value::from(decode_path(g)));
                }
                Some(_) => return None,
                None if w == g => {}
                None => return None,
            }
        }
        Some(params)
    }
}

/// The routes of the `cargo lambda watch` router table in `Cargo.toml`.
pub fn routes_from_cargo_toml(text: &str) -> Result<Vec<Route>, String> {
    let doc: toml::Value = text.parse().map_err(|e| format!("Cargo.toml: {e}"))?;
    let table = doc
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("lambda"))
        .and_then(|l| l.get("watch"))
        .and_then(|w| w.get("router"))
        .and_then(|r| r.as_table())
        .ok_or("Cargo.toml has no [workspace.metadata.lambda.watch.router]")?;
    let mut routes = Vec::new();
    for (path, targets) in table {
        for target in targets.as_array().into_iter().flatten() {
            let field = |k: &str| target.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            routes.push(Route {
                method: field("method").ok_or(format!("{path}: no method"))?,
                path: path.clone(),
                function: field("function").ok_or(format!("{path}: no function"))?,
            });
        }
    }
    Ok(routes)
}

struct Invocation {
    id: String,
    event: Bytes,
    deadline: SystemTime,
    reply: oneshot::Sender<Outcome>,
}

/// One function: its Runtime API, its queue of invocations and the ones in flight.
pub struct Function {
    pub name: String,
    pub runtime_api: SocketAddr,
    queue: mpsc::UnboundedSender<Invocation>,
    next: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

impl Function {
    /// Starts the function's Runtime API on a free port of 127.0.0.1.
    pub async fn start(name: &str) -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (queue, next) = mpsc::unbounded_channel();
        let function = Arc::new(Self {
            name: name.to_owned(),
            runtime_api: listener.local_addr()?,
            queue,
            next: Mutex::new(next),
            in_flight: Mutex::new(HashMap::new()),
        });
        let served = function.clone();
        tokio::spawn(serve_http(listener, move |req, _| {
            let function = served.clone();
            async move { function.runtime_api(req).await }
        }));
        Ok(function)
    }

    /// Queues `event` and waits for an instance's answer, at most `timeout`.
    pub async fn invoke(&self, event: Bytes, timeout: Duration) -> Option<Outcome> {
        let id = format!(
            "{}-{:08}",
            self.name,
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let (reply, answer) = oneshot::channel();
        let invocation = Invocation {
            id: id.clone(),
            event,
            deadline: SystemTime::now() + timeout,
            reply,
        };
        self.queue.send(invocation).ok()?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => Some(outcome),
            _ => {
                self.in_flight.lock().await.remove(&id);
                None
            }
        }
    }

    async fn runtime_api(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_owned();
        if req.method() == hyper::Method::GET && path.ends_with("/runtime/invocation/next") {
            return self.next_invocation().await;
        }
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let segments: Vec<&str> = path.split('/').collect();
        // /2018-06-01/runtime/invocation/{id}/response | /error, /2018-06-01/runtime/init/error
        match segments.as_slice() {
            [_, _, "runtime", "invocation", id, kind @ ("response" | "error")] => {
                let Some(reply) = self.in_flight.lock().await.remove(*id) else {
                    return plain(StatusCode::NOT_FOUND, "unknown or expired invocation");
                };
                let outcome = if *kind == "response" {
                    Ok(body)
                } else {
                    Err(String::from_utf8_lossy(&body).into_owned())
                };
                let _ = reply.send(outcome);
                plain(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
            }
            [_, _, "runtime", "init", "error"] => {
                tracing::error!(function = %self.name, error = %String::from_utf8_lossy(&body), "an instance failed to start");
                plain(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
            }
            _ => plain(StatusCode::NOT_FOUND, "not a Runtime API path"),
        }
    }

    async fn next_invocation(&self) -> Reply {
        loop {
            let invocation = {
                let mut next = self.next.lock().await;
                match next.recv().await {
                    Some(invocation) => invocation,
                    None => return plain(StatusCode::GONE, "shutting down"),
                }
            };
            if invocation.reply.is_closed() {
                continue; // its caller gave up waiting
            }
            let deadline_ms = invocation
                .deadline
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            self.in_flight
                .lock()
                .await
                .insert(invocation.id.clone(), invocation.reply);
            return Response::builder()
                .header("lambda-runtime-aws-request-id", &invocation.id)
                .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    format!(
                        "arn:aws:lambda:us-east-1:000000000000:function:{}",
                        self.name
                    ),
                )
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0",
                )
                .header("content-type", "application/json")
                .body(Full::new(invocation.event))
                .expect("response");
        }
    }
}

/// Keeps `instances` processes of `binary` running against `function`'s Runtime API.
pub fn supervise(
    function: &Arc<Function>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    instances: usize,
) {
    for instance in 0..instances {
        let (function, binary, env) = (function.clone(), binary.clone(), env.clone());
        tokio::spawn(async move {
            loop {
                let child = tokio::process::Command::new(&binary)
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env("AWS_LAMBDA_RUNTIME_API", function.runtime_api.to_string())
                    .env("AWS_LAMBDA_FUNCTION_NAME", &function.name)
                    .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                    .env(
                        "AWS_LAMBDA_LOG_GROUP_NAME",
                        format!("/aws/lambda/{}", function.name),
                    )
                    .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{instance}"))
                    .kill_on_drop(true)
                    .spawn();
                match child {
                    Ok(mut child) => {
                        let status = child.wait().await;
                        tracing::warn!(function = %function.name, instance, ?status, "instance ended; starting another");
                    }
                    Err(e) => {
                        tracing::error!(function = %function.name, binary = %binary.display(), error = %e, "cannot start an instance");
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

/// The HTTP side: routes to functions, raw invocations, 404 for the rest.
pub struct Gateway {
    pub routes: Vec<Route>,
    pub functions: HashMap<String, Arc<Function>>,
    pub http_timeout: Duration,
    pub invoke_timeout: Duration,
}

impl Gateway {
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        serve_http(listener, move |req, peer| {
            let gateway = self.clone();
            async move { gateway.handle(req, peer).await }
        })
        .await
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Reply {
        let path = req.uri().path().to_owned();
        if let Some(name) = path
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|rest| rest.strip_suffix("/invocations"))
        {
            let Some(function) = self.functions.get(name) else {
                return json_reply(
                    StatusCode::NOT_FOUND,
                    &json!({"message": "Function not found"}),
                );
            };
            let event = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return match function.invoke(event, self.invoke_timeout).await {
                Some(Ok(body)) => Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .expect("response"),
                Some(Err(error)) => Response::builder()
                    .header("content-type", "application/json")
                    .header("x-amz-function-error", "Unhandled")
                    .body(Full::new(Bytes::from(error)))
                    .expect("response"),
                None => json_reply(
                    StatusCode::GATEWAY_TIMEOUT,
                    &json!({"message": "Task timed out"}),
                ),
            };
        }
        let method = req.method().as_str().to_owned();
        let Some((route, params)) = self
            .routes
            .iter()
            .filter(|r| r.method == method)
            .find_map(|r| r.matches(&path).map(|p| (r, p)))
        else {
            return json_reply(StatusCode::NOT_FOUND, &json!({"message": "Not Found"}));
        };
        let Some(function) = self.functions.get(&route.function) else {
            return json_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"message": "Internal Server Error"}),
            );
        };
        let event = match http_event(req, route, params, peer).await {
            Ok(event) => event,
            Err(reply) => return reply,
        };
        match function.invoke(event, self.http_timeout).await {
            Some(Ok(body)) => http_response(&body).unwrap_or_else(|e| {
                tracing::error!(function = %route.function, error = %e, "unusable function response");
                json_reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({"message": "Internal Server Error"}))
            }),
            Some(Err(error)) => {
                tracing::error!(function = %route.function, %error, "the function failed");
                json_reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({"message": "Internal Server Error"}))
            }
            None => json_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"message": "Service Unavailable"}),
            ),
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on `listener`, each request answered by `handle` (request, peer).
async fn serve_http<H, F>(listener: TcpListener, handle: H)
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Reply> + Send + 'static,
{
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = handle(req, peer);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

/// The payload 2.0 event of an HTTP request.
async fn http_event(
    req: Request<Incoming>,
    route: &Route,
    params: Map<String, Value>,
    peer: SocketAddr,
) -> Result<Bytes, Reply> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| json_reply(StatusCode::BAD_REQUEST, &json!({"message": "Bad Request"})))?;
    build_event(&parts, &body, route, params, peer).map_err(|reply| *reply)
}

/// Most bytes of a synchronous Lambda invocation's event (6 MiB + 100, as AWS measures its
/// "6 MB"): API Gateway refuses a request whose event would be larger with a 413, before any
/// function runs. Binary bodies count base64-encoded, a third larger.
pub const LAMBDA_EVENT_LIMIT: usize = 6 * 1024 * 1024 + 100;

/// API Gateway's own limit on a request body (HTTP API: 10 MB).
pub const GATEWAY_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// The payload 2.0 event of a request whose body has been read; a 413 when the body is over
/// API Gateway's limit or the event over Lambda's.
fn build_event(
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    route: &Route,
    params: Map<String, Value>,
    peer: SocketAddr,
) -> Result<Bytes, Box<Reply>> {
    if body.len() > GATEWAY_BODY_LIMIT {
        return Err(Box::new(json_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"message": "Request Entity Too Large"}),
        )));
    }
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == hyper::header::COOKIE {
            cookies.extend(value.split(';').map(|c| Value::from(c.trim())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(v)) => {
                v.push(',');
                v.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::from(value));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(old)) => {
                old.push(',');
                old.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::from(v.into_owned()));
            }
        }
    }
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (body, base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) if is_text(content_type) => (Value::from(text), false),
        _ => (
            Value::from(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let route_key = format!("{} {}", route.method, route.path);
    let host = headers
        .get("host")
        .and_then(|h| h.as_str())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "cookies": if cookies.is_empty() { Value::Null } else { Value::from(cookies) },
        "headers": headers,
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::from(query) },
        "pathParameters": if params.is_empty() { Value::Null } else { Value::from(params) },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": "local",
            "http": {
                "method": route.method,
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": format!("{:016x}", now.as_nanos()),
            "routeKey": route_key,
            "stage": "$default",
            "time": chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.as_millis() as u64,
        },
        "body": body,
        "isBase64Encoded": base64,
    });
    let event = event.to_string();
    if event.len() > LAMBDA_EVENT_LIMIT {
        return Err(Box::new(json_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"message": "Request Entity Too Large"}),
        )));
    }
    Ok(Bytes::from(event))
}

/// Content API Gateway hands over as text; anything else goes base64-encoded.
fn is_text(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.is_empty()
        || media.starts_with("text/")
        || media == "application/json"
        || media.ends_with("+json")
        || media == "application/xml"
        || media == "application/x-www-form-urlencoded"
        || media == "application/javascript"
}

/// A function's payload 2.0 response as HTTP.
fn http_response(body: &[u8]) -> Result<Reply, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let status = v["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("no statusCode")?;
    let mut reply = Response::builder().status(status);
    for (name, value) in v["headers"].as_object().into_iter().flatten() {
        if let Some(value) = value.as_str() {
            reply = reply.header(name, value);
        }
    }
    for (name, values) in v["multiValueHeaders"].as_object().into_iter().flatten() {
        for value in values
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            reply = reply.header(name, value);
        }
    }
    for cookie in v["cookies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        reply = reply.header("set-cookie", cookie);
    }
    let text = v["body"].as_str().unwrap_or("");
    let bytes = if v["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| e.to_string())?
    } else {
        text.as_bytes().to_vec()
    };
    reply
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| e.to_string())
}

fn decode_path(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn plain(status: StatusCode, text: &'static str) -> Reply {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("response")
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_literal_segments_and_take_parameters() {
        let route = Route {
            method: "GET".into(),
            path: "/viral-clip/jobs/{job_id}".into(),
            function: "get-job".into(),
        };
        assert_eq!(
            route.matches("/viral-clip/jobs/42").unwrap()["job_id"],
            "42"
        );
        assert_eq!(
            route.matches("/viral-clip/jobs/a%20b").unwrap()["job_id"],
            "a b"
        );
        assert!(route.matches("/viral-clip/jobs/").is_none());
        assert!(route.matches("/viral-clip/jobs/1/x").is_none());
        assert!(route.matches("/viral-clip/job/1").is_none());
    }

    #[test]
    fn the_router_of_cargo_toml_is_read() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
                .unwrap();
        let routes = routes_from_cargo_toml(&text).unwrap();
        assert!(routes.iter().any(|r| r.method == "DELETE"
            && r.path == "/viral-clip/video/uploads/{upload_id}"
            && r.function == "abort-upload"));
    }

    fn upload_event(file_bytes: usize) -> Result<Bytes, Box<Reply>> {
        let file = vec![0xA5u8; file_bytes];
        let (content_type, form) = testkit::multipart(
            &[("aspect_ratio", "9:16"), ("title", "a talk")],
            &[("file", "talk.mp4", &file)],
        );
        let (mut parts, ()) = hyper::Request::builder()
            .method("POST")
            .uri("/viral-clip/video/upload")
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {}", "x".repeat(300)))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            )
            .header("host", "abc123.execute-api.eu-west-1.amazonaws.com")
            .body(())
            .unwrap()
            .into_parts();
        parts
            .headers
            .insert("idempotency-key", "k".repeat(255).parse().unwrap());
        let route = Route {
            method: "POST".into(),
            path: "/viral-clip/video/upload".into(),
            function: "upload-video".into(),
        };
        build_event(
            &parts,
            &Bytes::from(form),
            &route,
            Map::new(),
            "127.0.0.1:1".parse().unwrap(),
        )
    }

    #[test]
    fn the_largest_direct_upload_fits_a_lambda_event_and_a_larger_body_is_refused_with_413() {
        let limit = shared::ingest::IngestConfig::default().max_upload_bytes as usize;
        // The largest file the upload route takes, with its form around it, base64-encoded.
        let event = upload_event(limit).expect("fits");
        assert!(event.len() <= LAMBDA_EVENT_LIMIT, "{} bytes", event.len());
        // Just past what an event can carry: API Gateway's 413, before any function runs.
        let below = (LAMBDA_EVENT_LIMIT - 16 * 1024) / 4 * 3;
        assert!(upload_event(below).is_ok(), "just below");
        let refused = upload_event(LAMBDA_EVENT_LIMIT / 4 * 3 + 1024).expect_err("just above");
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn binary_and_text_bodies_are_told_apart_by_content_type() {
        assert!(is_text("application/json; charset=utf-8"));
        assert!(is_text(""));
        assert!(!is_text("multipart/form-data; boundary=x"));
        assert!(!is_text("video/mp4"));
    }
}
