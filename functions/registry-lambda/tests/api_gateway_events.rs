//! Canned API Gateway HTTP API events (payload 2.0, `tests/fixtures/apigw/` at the workspace
//! root) replayed in-process through `lambda_http`'s own adapter and the registry router, as
//! the Lambda runtime would: request conversion, routing, and the response as API Gateway
//! receives it. Storage is a local blob store and the builder a fake (no AWS here; the slow
//! test `tests/tests/registry_lambda.rs` runs the real binary on S3 and DynamoDB servers).

use async_trait::async_trait;
use base64::Engine;
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
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Answers every image with one seeded manifest.
struct FixedBuilder(ManifestEntry);

#[async_trait]
impl Builder for FixedBuilder {
    async fn manifest(&self, _: &ImageName, _: &str) -> Result<ManifestEntry, Arc<BuildError>> {
        Ok(self.0.clone())
    }
}

struct Seeded {
    registry: Arc<Registry>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn seeded() -> Seeded {
    seeded_with(None).await
}

/// With token auth on: redb accounts (the DynamoDB ones run the same conformance suite).
async fn seeded_with(auth: Option<Auth>) -> Seeded {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = Arc::new(FsBlobStore::open(dir.path()).expect("blob store"));
    let layer = b"a layer; the registry never looks inside".to_vec();
    let desc = LayerDesc {
        digest: Digest::of(&layer),
        diff_id: Digest::of(b"uncompressed"),
        size: layer.len() as u64,
    };
    let image = ImageName::parse("hello").expect("name");
    let docs = image_docs(image.arch, &[desc], false).expect("docs");
    let digest = Digest::of(&layer);
    blobs
        .put_bytes(&digest, layer.clone().into())
        .await
        .expect("layer");
    let manifest = docs.docker_manifest.clone();
    let entry = put_image_docs(&*blobs, docs).await.expect("docs");
    let settings = RegistrySettings {
        build_wait: None,
        source_description: "fixtures".into(),
    };
    Seeded {
        registry: Registry::with_auth(blobs, Arc::new(FixedBuilder(entry)), settings, auth),
        layer,
        manifest,
        _dir: dir,
    }
}

fn fixture(name: &str, digest: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/apigw")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.replace("{{DIGEST}}", digest)
}

/// Replay one event; the API Gateway response as JSON.
async fn replay(registry: &Arc<Registry>, name: &str, digest: &str) -> Value {
    replay_with(registry, name, digest, None).await
}

/// Replay one event with an `authorization` header added.
async fn replay_with(
    registry: &Arc<Registry>,
    name: &str,
    digest: &str,
    authorization: Option<&str>,
) -> Value {
    let mut event: Value = serde_json::from_str(&fixture(name, digest)).expect("event JSON");
    if let Some(value) = authorization {
        event["headers"]["authorization"] = value.into();
    }
    let request: LambdaRequest = serde_json::from_value(event).expect("event");
    let mut adapter = Adapter::from(router(registry.clone()));
    let event = LambdaEvent::new(request, Context::default());
    let response = adapter.call(event).await.expect("router never fails");
    serde_json::to_value(response).expect("response JSON")
}

fn header(r: &Value, name: &str) -> String {
    r["headers"][name].as_str().unwrap_or_default().to_string()
}

fn body(r: &Value) -> Vec<u8> {
    let text = r["body"].as_str().unwrap_or_default();
    match r["isBase64Encoded"].as_bool() {
        Some(true) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64 body"),
        _ => text.as_bytes().to_vec(),
    }
}

fn error_code(r: &Value) -> String {
    let v: Value = serde_json::from_slice(&body(r)).expect("error body is JSON");
    v["errors"][0]["code"].as_str().unwrap_or_default().into()
}

#[tokio::test]
async fn base_answers_with_the_api_version() {
    let s = seeded().await;
    let r = replay(&s.registry, "base_get.json", "").await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[tokio::test]
async fn manifest_get_and_head_carry_digest_type_and_length() {
    let s = seeded().await;
    let digest = Digest::of(&s.manifest).to_string();
    let r = replay(&s.registry, "manifest_get.json", "").await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body(&r), s.manifest);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(
        header(&r, "content-type"),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let r = replay(&s.registry, "manifest_head.json", "").await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(header(&r, "content-length"), s.manifest.len().to_string());
    assert!(body(&r).is_empty(), "HEAD has no body: {r}");
}

#[tokio::test]
async fn blob_head_and_get() {
    let s = seeded().await;
    let digest = Digest::of(&s.layer).to_string();
    let r = replay(&s.registry, "blob_head.json", &digest).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(header(&r, "content-length"), s.layer.len().to_string());
    assert_eq!(header(&r, "docker-content-digest"), digest);
    // Local storage streams the file; binary bodies travel base64-encoded.
    let r = replay(&s.registry, "blob_get.json", &digest).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body(&r), s.layer);
}

#[tokio::test]
async fn errors_keep_their_codes() {
    let s = seeded().await;
    let unknown = Digest::of(b"not stored").to_string();
    let r = replay(&s.registry, "blob_get.json", &unknown).await;
    assert_eq!(r["statusCode"], 404, "{r}");
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");
    let r = replay(&s.registry, "bad_name_get.json", "").await;
    assert_eq!(r["statusCode"], 400, "{r}");
    assert_eq!(error_code(&r), "NAME_INVALID");
}

const PUBLIC_URL: &str = "https://registry.example.org";

/// A registry with auth on and one tenant allowed `pulls` per day; its Basic credentials.
async fn with_tenant(pulls: u64) -> (Seeded, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = Arc::new(RedbAccounts::open(&dir.path().join("accounts.redb")).expect("redb"));
    let (tenant, key) = Tenant::create("acme", Some(pulls), None);
    assert!(accounts.create_tenant(&tenant).await.expect("create"));
    let settings = AuthSettings {
        public_url: PUBLIC_URL.into(),
        token_ttl: Duration::from_secs(300),
        keys: SigningKeys::parse(&SigningKeys::generate_secret()).expect("keys"),
    };
    let auth = Auth::new(settings, accounts).expect("auth");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("acme:{}", key.reveal()));
    (seeded_with(Some(auth)).await, format!("Basic {basic}"), dir)
}

// REST APIs (API Gateway v1) rename WWW-Authenticate to x-amzn-Remapped-WWW-Authenticate;
// through an HTTP API (payload 2.0) the challenge must come out under its own name.
#[tokio::test]
async fn the_challenge_comes_out_as_sent() {
    let (s, _, _dir) = with_tenant(5).await;
    let r = replay(&s.registry, "base_get.json", "").await;
    assert_eq!(r["statusCode"], 401, "{r}");
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    assert_eq!(
        header(&r, "www-authenticate"),
        format!("Bearer realm=\"{PUBLIC_URL}/token\",service=\"registry.example.org\"")
    );
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    // containerd's first request is a manifest HEAD: the challenge names the scope.
    let r = replay(&s.registry, "manifest_head.json", "").await;
    assert_eq!(r["statusCode"], 401, "{r}");
    assert!(
        header(&r, "www-authenticate").ends_with(",scope=\"repository:hello:pull\""),
        "{r}"
    );
}

#[tokio::test]
async fn rate_limit_headers_and_the_429_come_out_as_sent() {
    let (s, basic, _dir) = with_tenant(1).await;
    let r = replay_with(&s.registry, "manifest_get.json", "", Some(&basic)).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(header(&r, "ratelimit-limit"), "1;w=86400");
    assert_eq!(header(&r, "ratelimit-remaining"), "0;w=86400");
    let r = replay_with(&s.registry, "manifest_get.json", "", Some(&basic)).await;
    assert_eq!(r["statusCode"], 429, "{r}");
    assert_eq!(error_code(&r), "TOOMANYREQUESTS");
    let retry: u64 = header(&r, "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=86_400).contains(&retry), "{r}");
}
