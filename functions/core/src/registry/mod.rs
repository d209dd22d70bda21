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
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;
use error::{ErrorCode, RegistryError};
use paths::Endpoint;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

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
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(registry)
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
