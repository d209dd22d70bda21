//! The registry Lambda binary behind cargo-lambda's Lambda emulator, on
//! s3s-fs (S3) and moto_server (DynamoDB). An image is seeded as if the
//! builder had made it; canned API Gateway HTTP API events (payload 2.0,
//! `tests/fixtures/apigw/`) go in through the Lambda Invoke API and the
//! function's API Gateway responses are checked, down to fetching a blob
//! through its presigned S3 URL.

use base64::Engine;
use nixery_aws::dynamo::DynamoIndex;
use nixery_aws::lambda::request_key;
use nixery_aws::s3::{object_key, S3BlobStore};
use nixery_core::digest::Digest;
use nixery_core::image::{image_docs, LayerDesc};
use nixery_core::name::{Arch, ImageName};
use nixery_core::storage::{BlobRef, BlobStore, Index, ManifestEntry};
use nixery_e2e::harness::aws::{free_port, AwsServer, ACCESS_KEY, REGION, SECRET_KEY};
use nixery_e2e::harness::{output_within, read_log, tail, workspace_root};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FUNCTION: &str = "nixery-registry-lambda";
const BUCKET: &str = "nixery-blobs";
const TABLE: &str = "nixery-index";
/// Compiling the function (the AWS SDK) on two shared cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// From `cargo lambda watch` starting to the function answering.
const READY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
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
    require_cargo_lambda();
    let s3 = AwsServer::s3s_fs();
    let ddb = AwsServer::moto();
    let seeded = seed(&s3.endpoint, &ddb.endpoint);
    let watch = Watch::start(&s3.endpoint, &ddb.endpoint);

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

fn require_cargo_lambda() {
    let ok = Command::new(cargo())
        .args(["lambda", "--version"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "cargo-lambda is required for this test: `pip install cargo-lambda` \
         (tests/run.sh installs it), then `pyenv rehash` if you use pyenv"
    );
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

// ---------------------------------------------------------------------------------------------
// Seeding S3 and DynamoDB
// ---------------------------------------------------------------------------------------------

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    nixery_aws::clients::static_config(endpoint, ACCESS_KEY, SECRET_KEY, REGION).await
}

fn seed(s3_endpoint: &str, ddb_endpoint: &str) -> Seeded {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let s3 = nixery_aws::clients::s3_with_path_style(&sdk(s3_endpoint).await, true);
        s3.create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create bucket");
        let ddb = nixery_aws::clients::dynamodb(&sdk(ddb_endpoint).await);
        DynamoIndex::create_table(&ddb, TABLE)
            .await
            .expect("create table");
        let blobs = S3BlobStore::new(s3, BUCKET, Duration::from_secs(60));
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
        let key = request_key(&image, "latest");
        let entry = ManifestEntry {
            docker: docker.clone(),
            oci,
        };
        assert!(index
            .put_manifest(&key, &entry)
            .await
            .expect("put manifest"));
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

/// `cargo lambda watch` in a process group of its own, stopped on drop.
struct Watch {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Watch {
    fn start(s3_endpoint: &str, ddb_endpoint: &str) -> Watch {
        let root = workspace_root();
        // Build first, bounded and with readable errors; cargo-lambda then finds it fresh.
        let out = output_within(
            Command::new(cargo())
                .args(["build", "-p", FUNCTION, "--bin", FUNCTION])
                .current_dir(&root),
            BUILD_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "building {FUNCTION} failed:\n{}",
            tail(&String::from_utf8_lossy(&out.stderr), 60)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("watch.log");
        let file = std::fs::File::create(&log).expect("log file");
        let port = free_port();
        let env = [
            ("NIXERY_BUCKET", BUCKET),
            ("NIXERY_TABLE", TABLE),
            // Never invoked: the image is cached.
            ("NIXERY_BUILDER_FUNCTION", "nixery-builder-not-deployed"),
            ("NIXERY_BUILD_WAIT", "5"),
            ("NIXERY_PRESIGN_TTL", "120"),
            ("AWS_ENDPOINT_URL_S3", s3_endpoint),
            ("AWS_ENDPOINT_URL_DYNAMODB", ddb_endpoint),
            ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
            ("RUST_LOG", "info"),
        ];
        let mut cmd = Command::new(cargo());
        cmd.args(["lambda", "watch", "--ignore-changes", "--color", "never"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["-p", FUNCTION])
            .current_dir(&root)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env("NO_COLOR", "1")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("clone")))
            .stderr(Stdio::from(file))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start cargo lambda watch: {e}"));
        let mut watch = Watch {
            child,
            port,
            log,
            _dir: dir,
        };
        watch.wait_ready();
        watch
    }

    /// The invoke API listens at once, but the function is up only after
    /// cargo-lambda has (re)built and started it: the first invocation waits for it.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cargo lambda watch exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {} within {READY_TIMEOUT:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let event = fixture("base_get.json", "");
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = self.try_invoke(&event, left.max(INVOKE_TIMEOUT)) {
            panic!(
                "the function did not answer its first event: {e}\n{}",
                self.log()
            );
        }
    }

    fn try_invoke(&self, event: &str, timeout: Duration) -> Result<Value, String> {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{FUNCTION}/invocations",
            self.port
        );
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(event.to_string())
            .send()
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("invoke answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("invoke result is not JSON ({e}): {text}"))
    }

    /// Invoke the function with a fixture event; its API Gateway response.
    fn invoke_fixture(&self, name: &str, digest: &str) -> Value {
        let r = self
            .try_invoke(&fixture(name, digest), INVOKE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", self.log()));
        assert!(
            r.get("errorType").is_none() && r.get("statusCode").is_some(),
            "{name}: not an API Gateway response: {r}\n{}",
            self.log()
        );
        r
    }

    fn log(&self) -> String {
        format!(
            "--- cargo lambda watch log (tail) ---\n{}",
            tail(&read_log(&self.log), 80)
        )
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // TERM lets cargo-lambda stop the function (which runs in a process
        // group of its own, and also exits once the runtime API is gone);
        // KILL then ends whatever of our group is left.
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
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
