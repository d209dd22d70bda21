//! Requests from the network: registry paths and headers through the router (open and with
//! token auth), `Range` on local blobs, and API Gateway events through `lambda_http`'s
//! adapter. Whatever arrives, the answer is a response, never a panic or a bare 500, and a
//! `/v2` error is the registry's error JSON.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::BodyExt;
use lambda_http::http::{header, Method, Request, StatusCode};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use nixery_core::accounts::redb::RedbAccounts;
use nixery_core::accounts::{Accounts, Tenant};
use nixery_core::builder::{BuildError, Builder};
use nixery_core::digest::Digest;
use nixery_core::image::{image_docs, LayerDesc};
use nixery_core::name::ImageName;
use nixery_core::registry::auth::{Auth, AuthSettings, SigningKeys};
use nixery_core::registry::{router, Registry, RegistrySettings};
use nixery_core::storage::fs::FsBlobStore;
use nixery_core::storage::{put_image_docs, BlobStore, ManifestEntry};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

/// Answers every image with one seeded manifest.
struct FixedBuilder(ManifestEntry);

#[async_trait]
impl Builder for FixedBuilder {
    async fn manifest(&self, _: &ImageName, _: &str) -> Result<ManifestEntry, Arc<BuildError>> {
        Ok(self.0.clone())
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    open: Arc<Registry>,
    authed: Arc<Registry>,
    layer: Vec<u8>,
    /// `Basic` credentials of the authed registry's tenant.
    basic: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let layer: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (open, authed, basic) = runtime.block_on(seed(dir.path(), &layer));
        Fixture {
            runtime,
            open,
            authed,
            layer,
            basic,
            _dir: dir,
        }
    })
}

async fn seed(dir: &std::path::Path, layer: &[u8]) -> (Arc<Registry>, Arc<Registry>, String) {
    let blobs = Arc::new(FsBlobStore::open(&dir.join("blobs")).expect("blob store"));
    let desc = LayerDesc {
        digest: Digest::of(layer),
        diff_id: Digest::of(b"uncompressed"),
        size: layer.len() as u64,
    };
    let image = ImageName::parse("hello").expect("name");
    let docs = image_docs(image.arch, &[desc], false).expect("docs");
    let digest = Digest::of(layer);
    blobs
        .put_bytes(&digest, layer.to_vec().into())
        .await
        .expect("layer");
    let entry = put_image_docs(&*blobs, docs).await.expect("docs");
    let settings = || RegistrySettings {
        build_wait: None,
        source_description: "fuzz".into(),
    };
    let builder = Arc::new(FixedBuilder(entry));
    let accounts = Arc::new(RedbAccounts::open(&dir.join("accounts.redb")).expect("redb"));
    let (tenant, key) = Tenant::create("fuzz", Some(1_000_000_000), None);
    assert!(accounts.create_tenant(&tenant).await.expect("tenant"));
    let auth = AuthSettings {
        public_url: "https://registry.example.org".into(),
        token_ttl: Duration::from_secs(300),
        keys: SigningKeys::parse(&SigningKeys::generate_secret()).expect("keys"),
    };
    let auth = Auth::new(auth, accounts).expect("auth");
    let basic = STANDARD.encode(format!("fuzz:{}", key.reveal()));
    (
        Registry::new(blobs.clone(), builder.clone(), settings()),
        Registry::with_auth(blobs, builder, settings(), Some(auth)),
        format!("Basic {basic}"),
    )
}

/// Status and body of one request through the router.
fn call(
    registry: &Arc<Registry>,
    request: Request<axum::body::Body>,
) -> (StatusCode, lambda_http::http::HeaderMap, Vec<u8>) {
    let f = fixture();
    f.runtime.block_on(async {
        let response = router(registry.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes().to_vec();
        (parts.status, parts.headers, body)
    })
}

/// Not a server failure: a 2xx-4xx, or a 503 that asks the client to come back.
fn answered(status: StatusCode) -> bool {
    status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE
}

/// A `/v2` error carries `{"errors":[{"code","message"}]}` with a code and a message.
fn assert_registry_error(path: &str, status: StatusCode, body: &[u8]) {
    assert!(answered(status), "{status} for {path:?}");
    if status.is_client_error() && path.starts_with("/v2") && !body.is_empty() {
        let v: serde_json::Value = serde_json::from_slice(body).expect("error body is JSON");
        let code = v["errors"][0]["code"].as_str().unwrap_or_default();
        let message = v["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
            "{v}"
        );
        assert!(!message.is_empty(), "{v}");
    }
}

/// Byte 0 picks the method and registry; then the path and query up to a newline; then an
/// `Authorization` value (or `=basic` for the tenant's real credentials).
pub fn registry_request(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (path, authorization) = text.split_once('\n').unwrap_or((text, ""));
    let method = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ][usize::from(first & 7) % 6]
        .clone();
    let f = fixture();
    let registry = if first & 8 == 0 { &f.open } else { &f.authed };
    let mut builder = Request::builder().method(method.clone()).uri(path);
    match authorization {
        "" => {}
        "=basic" => builder = builder.header(header::AUTHORIZATION, &f.basic),
        value => builder = builder.header(header::AUTHORIZATION, value),
    }
    let Ok(request) = builder.body(axum::body::Body::empty()) else {
        return;
    };
    let path = request.uri().path().to_string();
    let (status, _, body) = call(registry, request);
    assert_registry_error(&path, status, &body);
    if method == Method::HEAD {
        assert!(body.is_empty(), "HEAD {path:?} has a body");
    }
}

/// A `Range` header on a blob served from a local file: 200 with the whole blob, 206 with
/// exactly the range named in `Content-Range`, or 416.
pub fn range(data: &[u8]) {
    let f = fixture();
    let uri = format!("/v2/hello/blobs/{}", Digest::of(&f.layer));
    let request = Request::get(uri)
        .header(header::RANGE, data)
        .body(axum::body::Body::empty());
    let Ok(request) = request else {
        return;
    };
    let (status, headers, body) = call(&f.open, request);
    let len = f.layer.len();
    match status {
        StatusCode::OK => assert!(body == f.layer, "200 with a different body"),
        StatusCode::PARTIAL_CONTENT => {
            let range = headers[header::CONTENT_RANGE].to_str().expect("ascii");
            let (start, end) = parse_content_range(range, len)
                .unwrap_or_else(|| panic!("Content-Range {range:?}"));
            assert!(body == f.layer[start..=end], "206 body is not {range}");
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {}
        other => panic!("Range {:?} answered {other}", String::from_utf8_lossy(data)),
    }
}

/// `bytes START-END/LEN` with END inside the blob.
fn parse_content_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end): (usize, usize) = (start.parse().ok()?, end.parse().ok()?);
    (total.parse::<usize>().ok()? == len && start <= end && end < len).then_some((start, end))
}

/// Any JSON as an API Gateway event (payload 2.0 and the other shapes `lambda_http` accepts)
/// through the adapter the Lambda runtime uses.
pub fn apigw_event(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<LambdaRequest>(data) else {
        return;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if !lambda_http_converts(&json) {
        return;
    }
    let f = fixture();
    let response = f.runtime.block_on(async {
        let mut adapter = Adapter::from(router(f.open.clone()));
        adapter
            .call(LambdaEvent::new(event, Context::default()))
            .await
    });
    let response = response.expect("the adapter answers every event");
    let json = serde_json::to_value(&response).expect("the response serialises");
    let status = json["statusCode"].as_u64().unwrap_or(200);
    let status = StatusCode::from_u16(status as u16).expect("a status");
    assert!(answered(status), "{json}");
}

/// Whether `lambda_http` 1.3 turns the event into a request without panicking: it unwraps
/// `Url::parse` of `{x-forwarded-proto}://{host}{/stage}{rawPath}` and the `http::Uri` of that
/// with the query (found by this target). API Gateway sets the host and a rawPath starting
/// with `/`, so no client can send such an event, and the runtime's panic layer would turn
/// one into an invocation error; the router behind it is what this target checks.
fn lambda_http_converts(event: &serde_json::Value) -> bool {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let header = |name: &str| {
        let headers = event["headers"].as_object()?;
        let (_, v) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        // `HeaderValue::to_str`: visible ASCII only, else the header counts as absent.
        text(v).filter(|v| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
    };
    let raw_path = text(&event["rawPath"]).unwrap_or_default();
    let path = match text(&event["requestContext"]["stage"]) {
        Some(stage) if stage != "$default" && !raw_path.starts_with(&format!("/{stage}/")) => {
            format!("/{stage}{raw_path}")
        }
        _ => raw_path,
    };
    let url = match header("host").or_else(|| text(&event["requestContext"]["domainName"])) {
        None => format!("http://localhost{path}"),
        Some(host) => {
            let scheme = header("x-forwarded-proto").unwrap_or_else(|| "https".into());
            format!("{scheme}://{host}{path}")
        }
    };
    let Ok(url) = url::Url::parse(&url) else {
        return false;
    };
    let query = text(&event["rawQueryString"]).unwrap_or_default();
    let uri = match query.is_empty() {
        true => url.to_string(),
        false => format!("{url}?{query}"),
    };
    uri.parse::<lambda_http::http::Uri>().is_ok()
}
