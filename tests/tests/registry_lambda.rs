//! The registry Lambda binary behind cargo-lambda's Lambda emulator, on
//! s3s-fs (S3) and moto_server (DynamoDB). An image is seeded as if the
//! builder had made it; canned API Gateway HTTP API events (payload 2.0,
//! `tests/fixtures/apigw/`) go in through the Lambda Invoke API and the
//! function's API Gateway responses are checked, down to fetching a blob
//! through its presigned S3 URL.

use base64::Engine;
use nixery_aws::dynamo::DynamoIndex;
use nixery_aws::s3::{object_key, S3BlobStore};
use nixery_core::builder::alias_key;
use nixery_core::digest::Digest;
use nixery_core::image::{image_docs, LayerDesc};
use nixery_core::name::{Arch, ImageName};
use nixery_core::source::PackageSource;
use nixery_core::storage::{AliasEntry, BlobRef, BlobStore, Index, ManifestEntry};
use nixery_e2e::harness::aws::{
    create_resources, dynamodb_client, s3_client, AwsServer, ACCESS_KEY, BUCKET, REGION,
    SECRET_KEY, TABLE,
};
use nixery_e2e::harness::lambda::LambdaWatch;
use nixery_e2e::harness::lambda_container::rie_binary;
use nixery_e2e::harness::process::{free_port, ChildGuard};
use nixery_e2e::harness::{cargo_command, output_within, tail, workspace_root, CLI_TIMEOUT};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const FUNCTION: &str = "nixery-registry-lambda";
/// The registry's channel: a commit, so the seeded alias never goes stale.
const CHANNEL_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the builder would have stored for `hello:latest`.
struct Seeded {
    layer: Vec<u8>,
    layer_digest: Digest,
    manifest: Vec<u8>,
    manifest_digest: Digest,
}

#[test]
fn registry_lambda_serves_api_gateway_events() {
    let s3 = AwsServer::s3s_fs();
    let ddb = AwsServer::moto();
    let seeded = seed(&s3.endpoint, &ddb.endpoint);
    let watch = start(&s3.endpoint, &ddb.endpoint);

    let r = watch.invoke_fixture("base_get.json", "");
    assert_status(&r, 200);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );

    let r = watch.invoke_fixture("manifest_get.json", "");
    assert_status(&r, 200);
    assert_eq!(body(&r), seeded.manifest, "manifest body");
    assert_eq!(
        header(&r, "docker-content-digest"),
        seeded.manifest_digest.to_string()
    );
    assert_eq!(
        header(&r, "content-type"),
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    let r = watch.invoke_fixture("manifest_head.json", "");
    assert_status(&r, 200);
    assert_eq!(
        header(&r, "content-length"),
        seeded.manifest.len().to_string()
    );
    assert_eq!(
        header(&r, "docker-content-digest"),
        seeded.manifest_digest.to_string()
    );
    assert!(body(&r).is_empty(), "HEAD has a body: {r}");

    let layer = seeded.layer_digest.to_string();
    let r = watch.invoke_fixture("blob_head.json", &layer);
    assert_status(&r, 200);
    assert_eq!(header(&r, "content-length"), seeded.layer.len().to_string());
    assert_eq!(header(&r, "docker-content-digest"), layer);

    let r = watch.invoke_fixture("blob_get.json", &layer);
    assert_status(&r, 307);
    let location = header(&r, "location");
    assert!(
        location.starts_with(&format!("{}/", s3.endpoint))
            && location.contains(&object_key(&seeded.layer_digest))
            && location.contains("X-Amz-Signature="),
        "Location is not a presigned URL on s3s-fs for the layer: {location}"
    );
    let fetched = reqwest::blocking::get(&location).expect("GET presigned URL");
    assert_eq!(fetched.status().as_u16(), 200, "presigned GET: {location}");
    assert_eq!(fetched.bytes().expect("blob bytes").as_ref(), seeded.layer);

    let unknown = Digest::of(b"not stored anywhere").to_string();
    let r = watch.invoke_fixture("blob_get.json", &unknown);
    assert_status(&r, 404);
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");

    let r = watch.invoke_fixture("bad_name_get.json", "");
    assert_status(&r, 400);
    assert_eq!(error_code(&r), "NAME_INVALID");
}

// ---------------------------------------------------------------------------------------------
// Seeding S3 and DynamoDB
// ---------------------------------------------------------------------------------------------

fn seed(s3_endpoint: &str, ddb_endpoint: &str) -> Seeded {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let s3 = s3_client(s3_endpoint).await;
        let ddb = dynamodb_client(ddb_endpoint).await;
        create_resources(&s3, &ddb).await;
        let blobs = S3BlobStore::new(s3, BUCKET);
        let index = DynamoIndex::new(ddb, TABLE);

        let layer = b"not really a tarball, but the registry never looks inside".to_vec();
        let desc = LayerDesc {
            digest: Digest::of(&layer),
            diff_id: Digest::of(b"uncompressed"),
            size: layer.len() as u64,
        };
        let image = ImageName::parse("hello").expect("image name");
        let docs = image_docs(image.arch, std::slice::from_ref(&desc), false).expect("docs");
        assert_eq!(image.arch, Arch::host());
        let put = |bytes: &[u8]| {
            let digest = Digest::of(bytes);
            let bytes = bytes::Bytes::copy_from_slice(bytes);
            let blobs = &blobs;
            async move {
                blobs.put_bytes(&digest, bytes).await.expect("put blob");
                BlobRef {
                    size: blobs.size(&digest).await.expect("size").expect("stored"),
                    digest,
                }
            }
        };
        put(&docs.config).await;
        put(&layer).await;
        let docker = put(&docs.docker_manifest).await;
        let oci = put(&docs.oci_manifest).await;
        // As the builder leaves it: an alias of the request, keyed by the registry's source.
        let source = PackageSource::Channel(CHANNEL_COMMIT.into());
        let key = alias_key(&source.identity("latest"), &image);
        let alias = AliasEntry {
            manifest: ManifestEntry {
                docker: docker.clone(),
                oci,
            },
            manifest_key: "seeded".into(),
            resolved_ms: 0,
        };
        index.put_alias(&key, &alias).await.expect("put alias");
        Seeded {
            layer,
            layer_digest: desc.digest,
            manifest: docs.docker_manifest,
            manifest_digest: docker.digest,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// cargo lambda watch: the Lambda runtime and Invoke APIs, running the function
// ---------------------------------------------------------------------------------------------

/// The registry Lambda under the emulator, configured as the Terraform does, on s3s-fs and
/// moto; it answers its first event before this returns.
fn start(s3_endpoint: &str, ddb_endpoint: &str) -> LambdaWatch {
    let env = registry_env(s3_endpoint, ddb_endpoint);
    let watch = LambdaWatch::start(FUNCTION, &env);
    watch.warm_up(&fixture("base_get.json", ""));
    watch
}

/// The registry Lambda's environment, as the Terraform sets it, with endpoints on loopback.
fn registry_env(s3_endpoint: &str, ddb_endpoint: &str) -> Vec<(String, String)> {
    [
        ("NIXERY_BUCKET", BUCKET),
        ("NIXERY_TABLE", TABLE),
        // Never invoked: the image is cached.
        ("NIXERY_BUILDER_FUNCTION", "nixery-builder-not-deployed"),
        ("NIXERY_CHANNEL", CHANNEL_COMMIT),
        ("NIXERY_BUILD_WAIT", "5"),
        ("NIXERY_PRESIGN_TTL", "120"),
        ("AWS_ENDPOINT_URL_S3", s3_endpoint),
        ("AWS_ENDPOINT_URL_DYNAMODB", ddb_endpoint),
        ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

trait InvokeFixture {
    fn invoke_fixture(&self, name: &str, digest: &str) -> Value;
}

impl InvokeFixture for LambdaWatch {
    /// Invoke the function with a fixture event; its API Gateway response.
    fn invoke_fixture(&self, name: &str, digest: &str) -> Value {
        let r = self
            .try_invoke(&fixture(name, digest), INVOKE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", tail(&self.log(), 80)));
        assert!(
            r.get("errorType").is_none() && r.get("statusCode").is_some(),
            "{name}: not an API Gateway response: {r}\n{}",
            tail(&self.log(), 80)
        );
        r
    }
}

/// An event from `tests/fixtures/apigw/` with `{{DIGEST}}` filled in.
fn fixture(name: &str, digest: &str) -> String {
    let path = workspace_root().join("tests/fixtures/apigw").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.replace("{{DIGEST}}", digest)
}

// ---------------------------------------------------------------------------------------------
// Reading API Gateway (payload 2.0) responses
// ---------------------------------------------------------------------------------------------

fn assert_status(r: &Value, want: u64) {
    assert_eq!(r["statusCode"].as_u64(), Some(want), "response: {r}");
}

/// A header (names are lowercase in the response), or "" if absent.
fn header(r: &Value, name: &str) -> String {
    let headers = r["headers"].as_object().cloned().unwrap_or_default();
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The body, decoded if the function base64-encoded it.
fn body(r: &Value) -> Vec<u8> {
    let text = r["body"].as_str().unwrap_or_default();
    if r["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64 body")
    } else {
        text.as_bytes().to_vec()
    }
}

fn error_code(r: &Value) -> String {
    let v: Value = serde_json::from_slice(&body(r))
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {r}"));
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The deployment artefact: the release zip under the Runtime Interface Emulator
// ---------------------------------------------------------------------------------------------

/// The zip the Terraform deploys, built as the README says (`cargo lambda build --release
/// --output-format zip`), holds a `bootstrap` that starts under the Runtime Interface
/// Emulator with the deployment's variables and answers an API Gateway event.
#[test]
fn the_release_zip_answers_under_the_runtime_interface_emulator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut build = cargo_command();
    build
        .args(["lambda", "build", "--release", "--output-format", "zip"])
        .args(["-p", FUNCTION, "--lambda-dir"])
        .arg(dir.path());
    let out = output_within(&mut build, CLI_TIMEOUT);
    assert!(
        out.status.success(),
        "cargo lambda build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zip = dir.path().join(FUNCTION).join("bootstrap.zip");
    let unpacked = dir.path().join("unpacked");
    let mut unzip = Command::new("unzip");
    unzip.arg("-q").arg(&zip).arg("-d").arg(&unpacked);
    assert!(
        output_within(&mut unzip, CLI_TIMEOUT).status.success(),
        "unzip {zip:?}"
    );
    let bootstrap = unpacked.join("bootstrap");
    assert!(bootstrap.is_file(), "the zip holds bootstrap");

    let (port, runtime_port) = (free_port(), free_port());
    let mut rie = Command::new(rie_binary());
    rie.arg("--runtime-interface-emulator-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{runtime_port}"))
        .arg(&bootstrap)
        .envs(registry_env("http://127.0.0.1:9", "http://127.0.0.1:9"));
    let mut guard = ChildGuard::spawn(rie, &dir.path().join("rie.log"), "aws-lambda-rie");
    guard.wait_port(port, Duration::from_secs(30));
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/function/invocations");
    let r: Value = reqwest::blocking::Client::new()
        .post(url)
        .body(fixture("base_get.json", ""))
        .timeout(INVOKE_TIMEOUT)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("invoke: {e}\n{}", guard.log()));
    assert_status(&r, 200);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
}
