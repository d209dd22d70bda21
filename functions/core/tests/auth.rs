//! The token-auth flow and metering through the router, in-process: local blobs, redb
//! accounts and a fake builder (the real clients run against `nixery serve` in
//! tests/tests/auth_clients.rs). Each test checks what a client sees: status, error code,
//! challenge, rate-limit headers, and what was counted.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use nixery_core::accounts::redb::RedbAccounts;
use nixery_core::accounts::{today, Accounts, Meter, Tenant, TenantStatus, UsageQuery};
use nixery_core::builder::{BuildError, BuildGate, Builder};
use nixery_core::digest::Digest;
use nixery_core::image::{image_docs, LayerDesc};
use nixery_core::name::ImageName;
use nixery_core::registry::auth::{Auth, AuthSettings, Claims, SigningKeys, MIN_TOKEN_TTL_SECS};
use nixery_core::registry::{router, Registry, RegistrySettings};
use nixery_core::storage::fs::FsBlobStore;
use nixery_core::storage::{put_image_docs, BlobStore, ManifestEntry};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const PUBLIC: &str = "https://registry.example.org";
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

/// Serves one seeded image for every name; asks the gate as a real build would.
struct Fake(ManifestEntry);

#[async_trait]
impl Builder for Fake {
    async fn manifest(&self, _: &ImageName, _: &str) -> Result<ManifestEntry, Arc<BuildError>> {
        Ok(self.0.clone())
    }

    async fn manifest_gated(
        &self,
        _: &ImageName,
        _: &str,
        gate: Arc<dyn BuildGate>,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        gate.admit().await.map_err(Arc::new)?;
        Ok(self.0.clone())
    }
}

struct Setup {
    app: axum::Router,
    accounts: Arc<dyn Accounts>,
    key: String,
    layer: Digest,
    _dir: tempfile::TempDir,
}

async fn setup(pulls: Option<u64>, builds: Option<u64>, ttl: Duration) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = Arc::new(FsBlobStore::open(dir.path()).expect("blobs"));
    let layer = b"layer bytes".to_vec();
    let desc = LayerDesc {
        digest: Digest::of(&layer),
        diff_id: Digest::of(b"tar"),
        size: layer.len() as u64,
    };
    let docs = image_docs(
        ImageName::parse("git").expect("name").arch,
        std::slice::from_ref(&desc),
        false,
    )
    .expect("docs");
    let digest = Digest::of(&layer);
    blobs
        .put_bytes(&digest, layer.clone().into())
        .await
        .expect("layer");
    let entry = put_image_docs(&*blobs, docs).await.expect("docs");
    let accounts: Arc<dyn Accounts> =
        Arc::new(RedbAccounts::open(&dir.path().join("accounts.redb")).expect("accounts"));
    let (tenant, key) = Tenant::create("acme", pulls, builds);
    assert!(accounts.create_tenant(&tenant).await.expect("create"));
    let settings = AuthSettings {
        public_url: PUBLIC.into(),
        token_ttl: ttl,
        keys: SigningKeys::parse(SECRET).expect("keys"),
    };
    let auth = Auth::new(settings, accounts.clone()).expect("auth");
    let reg_settings = RegistrySettings {
        build_wait: None,
        source_description: "test".into(),
    };
    let registry = Registry::with_auth(blobs, Arc::new(Fake(entry)), reg_settings, Some(auth));
    Setup {
        app: router(registry),
        accounts,
        key: key.reveal(),
        layer: desc.digest,
        _dir: dir,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    fn code(&self) -> String {
        self.body["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn send(app: &axum::Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.expect("router never fails");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn request(method: &str, uri: &str, auth: Option<String>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    req.body(Body::empty()).expect("request")
}

fn basic(user: &str, key: &str) -> String {
    let pair = format!("{user}:{key}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn token(s: &Setup, query: &str) -> String {
    let r = send(
        &s.app,
        request(
            "GET",
            &format!("/token?{query}"),
            Some(basic("acme", &s.key)),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.get("refresh_token").is_none());
    assert!(r.body["expires_in"].as_u64().is_some() && r.body["issued_at"].is_string());
    assert_eq!(r.body["token"], r.body["access_token"]);
    format!("Bearer {}", r.body["token"].as_str().expect("token"))
}

async fn pulls(s: &Setup) -> u64 {
    s.accounts
        .used("acme", &today(), Meter::Pulls)
        .await
        .expect("used")
}

#[tokio::test]
async fn unauthenticated_requests_get_the_challenge_everywhere() {
    let s = setup(None, None, Duration::from_secs(300)).await;
    let r = send(&s.app, request("GET", "/v2/", None)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert_eq!(
        r.header("www-authenticate"),
        format!("Bearer realm=\"{PUBLIC}/token\",service=\"registry.example.org\"")
    );
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    let r = send(
        &s.app,
        request("HEAD", "/v2/shell/git/manifests/latest", None),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .ends_with(",scope=\"repository:shell/git:pull\""));
    let r = send(
        &s.app,
        request(
            "GET",
            "/v2/git/blobs/sha256:00",
            Some(basic("acme", "nxr_bad")),
        ),
    )
    .await;
    assert_eq!(r.status, 401, "a wrong key is refused");
}

#[tokio::test]
async fn a_token_pulls_its_scope_only_and_a_pull_is_counted_once() {
    let s = setup(Some(10), None, Duration::from_secs(300)).await;
    let login = token(&s, "service=registry.example.org").await;
    assert_eq!(
        send(&s.app, request("GET", "/v2/", Some(login.clone())))
            .await
            .status,
        200
    );
    let r = send(
        &s.app,
        request("GET", "/v2/git/manifests/latest", Some(login)),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .contains("error=\"insufficient_scope\""));

    let bearer = token(&s, "scope=repository:git:pull&scope=repository:other:pull").await;
    let head = send(
        &s.app,
        request("HEAD", "/v2/git/manifests/latest", Some(bearer.clone())),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("ratelimit-remaining"), "10;w=86400");
    assert_eq!(pulls(&s).await, 0, "a HEAD is not a pull");
    let get = send(
        &s.app,
        request("GET", "/v2/git/manifests/latest", Some(bearer.clone())),
    )
    .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.header("ratelimit-limit"), "10;w=86400");
    assert_eq!(get.header("ratelimit-remaining"), "9;w=86400");
    assert_eq!(pulls(&s).await, 1);
    let blob = format!("/v2/git/blobs/{}", s.layer);
    assert_eq!(
        send(&s.app, request("GET", &blob, Some(bearer)))
            .await
            .status,
        200
    );
    let usage = s
        .accounts
        .usage(&UsageQuery::default())
        .await
        .expect("usage");
    assert_eq!((usage[0].pulls, usage[0].bytes), (1, 11), "{usage:?}");
}

#[tokio::test]
async fn post_form_grants_and_other_grants_are_refused() {
    let s = setup(None, None, Duration::from_secs(300)).await;
    let form = format!("grant_type=password&username=acme&password={}&scope=repository%3Agit%3Apull&client_id=containerd", s.key);
    let post = Request::builder()
        .method("POST")
        .uri("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("request");
    let r = send(&s.app, post).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let bearer = format!("Bearer {}", r.body["access_token"].as_str().expect("token"));
    assert_eq!(
        send(
            &s.app,
            request("GET", "/v2/git/manifests/latest", Some(bearer))
        )
        .await
        .status,
        200
    );
    let refresh = Request::builder()
        .method("POST")
        .uri("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("grant_type=refresh_token&refresh_token=x"))
        .expect("request");
    let r = send(&s.app, refresh).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn basic_credentials_are_accepted_and_suspension_denies() {
    let s = setup(None, None, Duration::from_secs(300)).await;
    let direct = basic("acme", &s.key);
    assert_eq!(
        send(
            &s.app,
            request("GET", "/v2/git/manifests/latest", Some(direct.clone()))
        )
        .await
        .status,
        200
    );
    let bearer = token(&s, "scope=repository:git:pull").await;
    let mut tenant = s
        .accounts
        .get_tenant("acme")
        .await
        .expect("get")
        .expect("tenant");
    tenant.status = TenantStatus::Suspended;
    assert!(s.accounts.update_tenant(&tenant).await.expect("suspend"));
    for auth in [direct.clone(), bearer] {
        let r = send(
            &s.app,
            request("GET", "/v2/git/manifests/latest", Some(auth)),
        )
        .await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "DENIED".to_string()));
    }
    let r = send(&s.app, request("GET", "/token", Some(direct))).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn over_quota_answers_429_until_midnight() {
    let s = setup(Some(1), None, Duration::from_secs(300)).await;
    let bearer = token(&s, "scope=repository:git:pull").await;
    let uri = "/v2/git/manifests/latest";
    assert_eq!(
        send(&s.app, request("GET", uri, Some(bearer.clone())))
            .await
            .status,
        200
    );
    for _ in 0..3 {
        let r = send(&s.app, request("GET", uri, Some(bearer.clone()))).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (429, "TOOMANYREQUESTS".to_string())
        );
        let retry: u64 = r.header("retry-after").parse().expect("Retry-After");
        assert!((1..=86_400).contains(&retry));
        assert_eq!(r.header("ratelimit-remaining"), "0;w=86400");
    }
    assert_eq!(pulls(&s).await, 1, "refused pulls are not counted");
}

#[tokio::test]
async fn the_build_limit_is_its_own() {
    let s = setup(None, Some(1), Duration::from_secs(300)).await;
    let bearer = token(&s, "scope=repository:git:pull").await;
    let uri = "/v2/git/manifests/latest";
    assert_eq!(
        send(&s.app, request("GET", uri, Some(bearer.clone())))
            .await
            .status,
        200
    );
    let r = send(&s.app, request("GET", uri, Some(bearer))).await;
    assert_eq!(
        r.status, 429,
        "the fake builds every time: the second build is over the limit"
    );
    assert!(r.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("build"));
}

#[tokio::test]
async fn expired_and_foreign_tokens_are_invalid_tokens() {
    let s = setup(None, None, Duration::from_secs(300)).await;
    let now = nixery_core::storage::now_ms() / 1000;
    let scope = ["git".to_string()].into_iter().collect();
    // Signed with another key (as after a rotation that dropped the old secret).
    let other = SigningKeys::parse(&"f".repeat(40)).expect("keys");
    let claims = Claims::new("acme", "registry.example.org", now, 300, &scope);
    let forged = format!("Bearer {}", other.sign(&claims).expect("sign"));
    // Expired long ago, signed with the registry's own key.
    let keys = SigningKeys::parse(SECRET).expect("keys");
    let old = Claims::new("acme", "registry.example.org", now - 1000, 300, &scope);
    let expired = format!("Bearer {}", keys.sign(&old).expect("sign"));
    for bearer in [forged, expired] {
        let uri = "/v2/git/manifests/latest";
        let r = send(&s.app, request("GET", uri, Some(bearer))).await;
        assert_eq!(r.status, 401);
        let challenge = r.header("www-authenticate");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
}

#[tokio::test]
async fn token_lifetimes_are_at_least_a_minute() {
    let s = setup(None, None, Duration::from_secs(300)).await;
    let uri = "/token?scope=repository:git:pull";
    let r = send(&s.app, request("GET", uri, Some(basic("acme", &s.key)))).await;
    let expires_in = r.body["expires_in"].as_u64().expect("expires_in");
    assert!(expires_in >= MIN_TOKEN_TTL_SECS);
}
