//! A pass-through HTTP proxy on loopback, for putting between a client and an AWS-compatible
//! server (or the Lambda emulator): it counts requests by method (by operation for DynamoDB), can fail writes on demand,
//! and can be pointed at another upstream while it runs. The Host header is forwarded as
//! sent, so SigV4 signatures still verify upstream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;

#[derive(Default)]
struct State {
    upstream: Mutex<String>,
    counts: Mutex<BTreeMap<String, usize>>,
    fail_puts: AtomicBool,
}

/// A running proxy; it lives as long as the runtime it was started on.
#[derive(Clone)]
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
}

impl Proxy {
    /// Start forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let state = Arc::new(State::default());
        *state.upstream.lock().expect("upstream") = upstream.to_string();
        // Redirects go back to the client, as a proxy must pass them.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let (client, state) = (client.clone(), shared.clone());
            async move { forward(&client, &state, req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Send later requests to `upstream` instead.
    pub fn switch(&self, upstream: &str) {
        *self.state.upstream.lock().expect("upstream") = upstream.to_string();
    }

    /// Requests seen since the last [`Proxy::clear_counts`], by method or operation.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.state.counts.lock().expect("counts").clone()
    }

    pub fn clear_counts(&self) {
        self.state.counts.lock().expect("counts").clear();
    }

    /// While on, every PUT is answered 500 with an S3 error body instead of forwarded.
    pub fn fail_puts(&self, on: bool) {
        self.state.fail_puts.store(on, Ordering::SeqCst);
    }
}

/// What a request is counted as: its AWS JSON-protocol operation (`X-Amz-Target`, as
/// DynamoDB and SSM use), else its method.
fn operation(req: &Request) -> String {
    req.headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .map_or_else(|| req.method().to_string(), str::to_string)
}

async fn forward(client: &reqwest::Client, state: &State, req: Request) -> Response {
    *state
        .counts
        .lock()
        .expect("counts")
        .entry(operation(&req))
        .or_default() += 1;
    if req.method() == Method::PUT && state.fail_puts.load(Ordering::SeqCst) {
        let body = "<Error><Code>InternalError</Code><Message>injected</Message></Error>";
        return Response::builder()
            .status(500)
            .body(Body::from(body))
            .expect("response");
    }
    let upstream = state.upstream.lock().expect("upstream").clone();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{upstream}{path}");
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("method");
    let mut fwd = client.request(method, url).body(body);
    for (k, v) in parts.headers.iter() {
        fwd = fwd.header(k.as_str(), v.as_bytes());
    }
    let resp = match fwd.send().await {
        Ok(resp) => resp,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(format!("proxy: upstream failed: {e}")))
                .expect("response")
        }
    };
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        out = out.header(k.as_str(), v.as_bytes());
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    out.body(Body::from(bytes)).expect("response")
}
