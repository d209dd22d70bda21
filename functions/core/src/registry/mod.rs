//! The registry HTTP API (pull only), as one axum `Router` that both the
//! local server and the Lambda serve.

pub mod auth;
mod blobs;
pub mod error;
mod hot_blobs;
mod landing;
mod manifests;
mod metering;
mod paths;
mod tags;

use crate::builder::Builder;
use crate::digest::Digest;
use crate::memo::Memo;
use crate::storage::BlobStore;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;
use error::{ErrorCode, RegistryError};
use paths::Endpoint;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many recent build errors the landing page shows.
const RECENT_ERRORS: usize = 20;
/// Manifests kept in memory by digest (a few KiB each).
const MANIFEST_MEMO: usize = 1024;
/// Blob sizes and local blob paths kept in memory (a few dozen bytes each).
const BLOB_MEMO: usize = 65536;

#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// How long a manifest request waits for a build before answering 429
    /// (the build goes on). None waits for the build to finish.
    pub build_wait: Option<Duration>,
    /// Shown on the landing page, e.g. "local path /srv/pkgs".
    pub source_description: String,
}

pub struct Registry {
    pub blobs: Arc<dyn BlobStore>,
    pub builder: Arc<dyn Builder>,
    pub settings: RegistrySettings,
    /// Token auth and metering; None serves everyone.
    auth: Option<auth::Auth>,
    recent_errors: Mutex<VecDeque<(String, String)>>,
    /// Manifest bytes by digest, so warm pulls skip the blob store.
    manifests: Memo<Digest, (Bytes, &'static str)>,
    /// Sizes of blobs seen (for HEAD) and local blob paths (for GET).
    blob_sizes: Memo<Digest, u64>,
    local_blobs: Memo<Digest, std::path::PathBuf>,
    /// Small local blobs' bytes, for warm GETs without file reads.
    hot_blobs: hot_blobs::HotBlobs,
}

impl Registry {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        builder: Arc<dyn Builder>,
        settings: RegistrySettings,
    ) -> Arc<Self> {
        Self::with_auth(blobs, builder, settings, None)
    }

    /// A registry that serves only tenants with credentials, and meters their pulls.
    pub fn with_auth(
        blobs: Arc<dyn BlobStore>,
        builder: Arc<dyn Builder>,
        settings: RegistrySettings,
        auth: Option<auth::Auth>,
    ) -> Arc<Self> {
        Arc::new(Registry {
            blobs,
            builder,
            settings,
            auth,
            recent_errors: Mutex::default(),
            manifests: Memo::new(MANIFEST_MEMO),
            blob_sizes: Memo::new(BLOB_MEMO),
            local_blobs: Memo::new(BLOB_MEMO),
            hot_blobs: hot_blobs::HotBlobs::new(hot_blobs::HOT_BUDGET, hot_blobs::HOT_MAX_BLOB),
        })
    }

    /// Remember a failed build for the landing page; `error` is what the client was told.
    fn record_error(&self, image: &str, error: &str) {
        let mut q = self.recent_errors.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == RECENT_ERRORS {
            q.pop_back();
        }
        q.push_front((image.to_string(), error.to_string()));
    }

    fn recent_errors(&self) -> Vec<(String, String)> {
        self.recent_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// The router: `/` landing page, `/v2/...` registry API, JSON errors elsewhere.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(landing::page))
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .merge(auth::token_routes())
        .fallback(|| async {
            RegistryError::new(
                ErrorCode::Unsupported,
                "not a registry endpoint; see / for usage",
            )
        })
        .layer(middleware::from_fn(log_request))
        .with_state(registry)
}

/// One log line per request, once answered: a span per request and a line at each end cost
/// a quarter of a warm manifest GET's throughput. The path only: queries may carry scopes.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let micros = start.elapsed().as_micros() as u64;
    match resp.status().is_server_error() {
        true => tracing::warn!(%method, path, status, micros, "request"),
        false => tracing::info!(%method, path, status, micros, "request"),
    }
    resp
}

async fn v2(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let path = req.uri().path();
    // Exactly one slash after /v2: `/v2//x` names an empty first component.
    let rest = path.strip_prefix("/v2/").unwrap_or("").to_string();
    let method = req.method().clone();
    let headers = req.headers().clone();
    if method != Method::GET && method != Method::HEAD {
        return RegistryError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not supported: this registry is pull-only"),
        )
        .into_response();
    }
    let endpoint = match paths::parse(&rest) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let result = async {
        let identity = match &reg.auth {
            Some(auth) => Some(auth.authorize(&headers, endpoint.repository()).await?),
            None => None,
        };
        let identity = identity.as_ref();
        match endpoint {
            Endpoint::Base => Ok(base()),
            Endpoint::Tags { name } => tags::list(name, req.uri().query()),
            Endpoint::Manifest { name, reference } => {
                manifests::get(&reg, name, reference, &method, &headers, identity).await
            }
            Endpoint::Blob { name, digest } => blobs::get(&reg, name, digest, req, identity).await,
        }
    };
    let mut resp = result.await.unwrap_or_else(IntoResponse::into_response);
    // On every /v2 response, errors included: clients check it to know they talk to a registry.
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

fn base() -> Response {
    (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tower::ServiceExt;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One line per request once answered, with method, path (no query) and status; server
    /// errors at WARN so that they stand out.
    #[tokio::test]
    async fn each_request_is_logged_once_with_its_status() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/broken",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(middleware::from_fn(log_request));
        for uri in ["/ok?scope=secret", "/broken"] {
            let req = Request::builder().uri(uri).body(axum::body::Body::empty());
            app.clone()
                .oneshot(req.expect("request"))
                .await
                .expect("answer");
        }
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        let logged: Vec<&str> = text.lines().collect();
        assert_eq!(logged.len(), 2, "{text}");
        assert!(logged[0].contains(" INFO ") && logged[0].contains("path=\"/ok\""));
        assert!(logged[0].contains("status=200") && !logged[0].contains("secret"));
        assert!(logged[1].contains(" WARN ") && logged[1].contains("status=500"));
        assert!(logged
            .iter()
            .all(|l| l.contains("method=GET") && l.contains("micros=")));
    }
}
