//! A counting HTTP proxy on loopback, put between the functions and a libSQL server: it counts
//! the requests (each one a network round trip to the database) and can hold each one for a
//! fixed delay, as a real network between a function and its database would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The proxy; stops when dropped.
pub struct CountingProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    _tasks: JoinSet<()>,
}

struct State {
    upstream: String,
    agent: ureq::Agent,
    requests: AtomicU64,
    delay_us: AtomicU64,
}

impl CountingProxy {
    /// Forwards to `upstream` (`http://127.0.0.1:<port>`) from a random loopback port.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            requests: AtomicU64::new(0),
            delay_us: AtomicU64::new(0),
        });
        let mut tasks = JoinSet::new();
        let shared = state.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { forward(&state, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            state,
            _tasks: tasks,
        }
    }

    /// `http://<addr>`: what the functions get as `DATABASE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests forwarded so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Holds every later request this long before forwarding it.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }
}

async fn forward(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let delay = Duration::from_micros(state.delay_us.load(Ordering::SeqCst));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let url = format!(
        "{}{}",
        state.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "authorization" | "content-type"))
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let method = parts.method.clone();
    let agent = state.agent.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(body.to_vec()).map_err(|e| e.to_string())?;
        let mut resp = agent.run(request).map_err(|e| e.to_string())?;
        let status = resp.status();
        let content_type = resp.headers().get("content-type").cloned();
        let bytes = resp.body_mut().read_to_vec().map_err(|e| e.to_string())?;
        Ok::<_, String>((status, content_type, bytes))
    })
    .await;
    let reply = match answer {
        Ok(Ok((status, content_type, bytes))) => {
            let mut resp = Response::new(Full::new(Bytes::from(bytes)));
            *resp.status_mut() = status;
            if let Some(ct) = content_type {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        _ => {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"upstream unreachable")));
            *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
            resp
        }
    };
    Ok(reply)
}
