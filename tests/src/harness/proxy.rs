//! A pass-through HTTP proxy on loopback, for putting between a client and an AWS-compatible
//! server (or the Lambda emulator): it counts requests by method (by operation for DynamoDB),
//! can answer some requests with an error instead ([`Fault`]: failed writes, what a throttled
//! AWS service sends), and can be pointed at another upstream while it runs. The Host header is
//! forwarded as sent, so SigV4 signatures still verify upstream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;

#[derive(Default)]
struct State {
    upstream: Mutex<String>,
    counts: Mutex<BTreeMap<String, usize>>,
    fault: Mutex<Option<Fault>>,
    seen: AtomicUsize,
    injected: AtomicUsize,
}

/// An error answer sent instead of forwarding: every `every`-th request (1 = all of them) of
/// `method` (None: any), only until `until` when set. The constructors give what S3 answers a
/// failed write and what AWS sends when it throttles.
#[derive(Clone, Debug)]
pub struct Fault {
    pub every: usize,
    pub method: Option<Method>,
    pub until: Option<Instant>,
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: &'static str,
}

impl Fault {
    /// Every PUT (an upload, a part of one) fails with S3's 500 InternalError.
    pub fn s3_failed_puts() -> Fault {
        Fault {
            every: 1,
            method: Some(Method::PUT),
            until: None,
            status: 500,
            headers: vec![("content-type", "application/xml")],
            body: "<Error><Code>InternalError</Code><Message>injected</Message></Error>",
        }
    }

    /// S3 under request-rate pressure: 503 SlowDown (the SDKs retry it as throttling).
    pub fn s3_slow_down(every: usize) -> Fault {
        Fault {
            every,
            method: None,
            until: None,
            status: 503,
            headers: vec![("content-type", "application/xml")],
            body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                   <Message>Please reduce your request rate.</Message></Error>",
        }
    }

    /// DynamoDB over its capacity: 400 ProvisionedThroughputExceededException.
    pub fn dynamodb_throttling(every: usize) -> Fault {
        Fault {
            every,
            method: None,
            until: None,
            status: 400,
            headers: vec![("content-type", "application/x-amz-json-1.0")],
            body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#,
        }
    }

    /// Invoke at the function's reserved concurrency: 429 TooManyRequestsException.
    pub fn lambda_throttling(every: usize) -> Fault {
        Fault {
            every,
            method: None,
            until: None,
            status: 429,
            headers: vec![
                ("content-type", "application/json"),
                ("x-amzn-errortype", "TooManyRequestsException"),
            ],
            body: r#"{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}"#,
        }
    }

    pub fn until(mut self, until: Instant) -> Fault {
        self.until = Some(until);
        self
    }
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

    /// Answer requests with `fault` from now on (None: forward everything again).
    pub fn inject(&self, fault: Option<Fault>) {
        *self.state.fault.lock().expect("fault") = fault;
    }

    /// How many requests were answered with an injected fault.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
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
    if let Some(resp) = injected(state, req.method()) {
        return resp;
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

/// The injected fault's answer, when this request is one to fail.
fn injected(state: &State, method: &Method) -> Option<Response> {
    let fault = state.fault.lock().expect("fault").clone()?;
    if fault.method.as_ref().is_some_and(|m| m != method) {
        return None;
    }
    let n = state.seen.fetch_add(1, Ordering::SeqCst) + 1;
    let active = fault.until.is_none_or(|t| Instant::now() < t);
    if !active || !n.is_multiple_of(fault.every.max(1)) {
        return None;
    }
    state.injected.fetch_add(1, Ordering::SeqCst);
    let mut resp = Response::builder().status(fault.status);
    for (k, v) in &fault.headers {
        resp = resp.header(*k, *v);
    }
    Some(resp.body(Body::from(fault.body)).expect("response"))
}
