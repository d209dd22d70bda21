//! The serverless path, on this machine: the builder Lambda binary under
//! cargo-lambda's runtime emulator, invoked through the Lambda Invoke API by
//! the registry code; blobs in s3s-fs, the index in moto_server, store paths
//! from a signed binary cache made by `nix copy` and served on loopback; the
//! registry router over those adapters served on loopback; containerd pulls
//! (following 307s to presigned s3s-fs URLs) and runs the image. Faults:
//! S3 failing uploads, a builder dying mid-build, the wait budget running out.

use nixery_aws::dynamo::DynamoIndex;
use nixery_aws::lambda::LambdaBuilder;
use nixery_aws::s3::S3BlobStore;
use nixery_core::registry::{router, Registry, RegistrySettings};
use nixery_e2e::harness::aws::{AwsServer, ACCESS_KEY, REGION, SECRET_KEY};
use nixery_e2e::harness::lambda::{BinaryCacheServer, LambdaWatch};
use nixery_e2e::harness::{http_get, http_head, pkgs_path, Containerd, ACCEPT_ALL};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUCKET: &str = "nixery-blobs";
const TABLE: &str = "nixery-index";
const BUILDER: &str = "nixery-builder-lambda";

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    nixery_aws::clients::static_config(endpoint, ACCESS_KEY, SECRET_KEY, REGION).await
}

struct Options {
    build_wait: Duration,
    lease_ttl: Duration,
    invoke_timeout: Duration,
    /// Put a fault-injecting proxy between the builder and S3.
    s3_proxy: bool,
    /// Route the registry's S3 and DynamoDB calls through counting proxies.
    count_calls: bool,
    builder_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            build_wait: Duration::from_secs(900),
            lease_ttl: Duration::from_secs(900),
            invoke_timeout: Duration::from_secs(900),
            s3_proxy: false,
            count_calls: false,
            builder_env: vec![],
        }
    }
}

/// Everything of one deployment; dropped in reverse order of need.
struct Stack {
    addr: String,
    rt: tokio::runtime::Runtime,
    ddb: aws_sdk_dynamodb::Client,
    fail_puts: Arc<AtomicBool>,
    /// Calls by method, when `count_calls`: registry (HTTP), S3, DynamoDB.
    counts: [Counts; 3],
    builder: LambdaWatch,
    /// The Invoke API the registry calls (through a proxy, so that a dead
    /// builder can be replaced as Lambda would start a new instance).
    lambda_upstream: Upstream,
    base_env: Vec<(String, String)>,
    _cache: BinaryCacheServer,
    _s3: AwsServer,
    _moto: AwsServer,
    _tmp: tempfile::TempDir,
}

impl Stack {
    fn start(opts: Options) -> Stack {
        let s3 = AwsServer::s3s_fs();
        let moto = AwsServer::moto();
        let cache = BinaryCacheServer::start(&["hello", "cacert", "iana-etc"]);
        let tmp = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let fail_puts = Arc::new(AtomicBool::new(false));
        let s3_for_builder = if opts.s3_proxy {
            rt.block_on(fault_proxy(s3.endpoint.clone(), fail_puts.clone()))
        } else {
            s3.endpoint.clone()
        };
        let (s3c, ddb) = rt.block_on(create_resources(&s3.endpoint, &moto.endpoint));
        let mut env = vec![
            ("NIXERY_BUCKET", BUCKET.to_string()),
            ("NIXERY_TABLE", TABLE.to_string()),
            ("NIXERY_PKGS_PATH", pkgs_path().display().to_string()),
            ("NIXERY_BINARY_CACHE", cache.url.clone()),
            ("NIXERY_TRUSTED_KEYS", cache.public_key.clone()),
            ("AWS_ENDPOINT_URL_S3", s3_for_builder),
            ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("TMPDIR", tmp.path().display().to_string()),
            ("RUST_LOG", "info".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<Vec<_>>();
        let base_env = env.clone();
        env.extend(opts.builder_env.iter().cloned());
        let builder = LambdaWatch::start(BUILDER, BUILDER, &env);
        builder.warm_up(BUILDER);
        let lambda_upstream: Upstream = Arc::new(std::sync::Mutex::new(builder.endpoint.clone()));
        let lambda_proxy = rt.block_on(switchable_proxy(
            lambda_upstream.clone(),
            Arc::new(AtomicBool::new(false)),
            Counts::default(),
        ));
        let counts = [Counts::default(), Counts::default(), Counts::default()];
        let (reg_s3, reg_ddb) = if opts.count_calls {
            let off = Arc::new(AtomicBool::new(false));
            let s3p = rt.block_on(counting_proxy(
                s3.endpoint.clone(),
                off.clone(),
                counts[1].clone(),
            ));
            let ddbp = rt.block_on(counting_proxy(
                moto.endpoint.clone(),
                off,
                counts[2].clone(),
            ));
            rt.block_on(async {
                let s3c = nixery_aws::clients::s3_with_path_style(&sdk(&s3p).await, true);
                (s3c, nixery_aws::clients::dynamodb(&sdk(&ddbp).await))
            })
        } else {
            (s3c, ddb.clone())
        };
        let mut addr = rt.block_on(serve_registry(&lambda_proxy, reg_s3, reg_ddb, &opts));
        if opts.count_calls {
            let off = Arc::new(AtomicBool::new(false));
            let proxied = rt.block_on(counting_proxy(
                format!("http://{addr}"),
                off,
                counts[0].clone(),
            ));
            addr = proxied.trim_start_matches("http://").to_string();
        }
        Stack {
            addr,
            rt,
            ddb,
            fail_puts,
            counts,
            builder,
            lambda_upstream,
            base_env,
            _cache: cache,
            _s3: s3,
            _moto: moto,
            _tmp: tmp,
        }
    }

    /// Start a fresh builder (without injected faults) and send invocations
    /// to it, as Lambda starts a new instance after one died.
    fn replace_builder(&mut self) {
        let fresh = LambdaWatch::start(BUILDER, BUILDER, &self.base_env);
        fresh.warm_up(BUILDER);
        *self.lambda_upstream.lock().expect("upstream") = fresh.endpoint.clone();
        self.builder = fresh;
    }

    fn manifest(&self, name: &str) -> nixery_e2e::harness::Resp {
        http_get(
            &format!("http://{}/v2/{name}/manifests/latest", self.addr),
            &[("Accept", ACCEPT_ALL)],
        )
    }

    /// Items in the index whose key starts with `prefix`.
    fn index_items(&self, prefix: &str) -> usize {
        self.rt.block_on(async {
            let out = self
                .ddb
                .scan()
                .table_name(TABLE)
                .send()
                .await
                .expect("scan");
            out.items()
                .iter()
                .filter(|i| {
                    i.get("pk")
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|pk| pk.starts_with(prefix))
                })
                .count()
        })
    }
}

async fn create_resources(
    s3_endpoint: &str,
    ddb_endpoint: &str,
) -> (aws_sdk_s3::Client, aws_sdk_dynamodb::Client) {
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
    (s3, ddb)
}

/// The registry router over the AWS adapters, as the registry Lambda builds it.
async fn serve_registry(
    lambda_endpoint: &str,
    s3: aws_sdk_s3::Client,
    ddb: aws_sdk_dynamodb::Client,
    opts: &Options,
) -> String {
    let lambda = nixery_aws::clients::lambda(&sdk(lambda_endpoint).await);
    let index = Arc::new(DynamoIndex::new(ddb, TABLE));
    let builder = Arc::new(
        LambdaBuilder::new(lambda, BUILDER, index, opts.lease_ttl)
            .with_invoke_timeout(opts.invoke_timeout),
    );
    let blobs = Arc::new(S3BlobStore::new(s3, BUCKET, Duration::from_secs(300)));
    let settings = RegistrySettings {
        build_wait: Some(opts.build_wait),
        source_description: "test binary cache".into(),
    };
    let app = router(Registry::new(blobs, builder, settings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Requests seen by a proxy, by method.
type Counts = Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>;

/// A pass-through HTTP proxy that counts requests by method and answers 500
/// to every PUT while `fail_puts` is set (SigV4 still verifies: the Host
/// header is kept).
async fn fault_proxy(upstream: String, fail_puts: Arc<AtomicBool>) -> String {
    counting_proxy(upstream, fail_puts, Counts::default()).await
}

async fn counting_proxy(upstream: String, fail_puts: Arc<AtomicBool>, counts: Counts) -> String {
    let upstream = Arc::new(std::sync::Mutex::new(upstream));
    switchable_proxy(upstream, fail_puts, counts).await
}

/// Where a proxy forwards to; can be switched while it runs.
type Upstream = Arc<std::sync::Mutex<String>>;

async fn switchable_proxy(
    upstream: Upstream,
    fail_puts: Arc<AtomicBool>,
    counts: Counts,
) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    // Pass redirects through to the client, as a proxy must.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, fail) = (client.clone(), fail_puts.clone());
        let upstream = upstream.lock().expect("upstream").clone();
        *counts
            .lock()
            .expect("counts")
            .entry(req.method().to_string())
            .or_default() += 1;
        async move {
            if req.method() == axum::http::Method::PUT && fail.load(Ordering::SeqCst) {
                return Response::builder()
                    .status(500)
                    .body(Body::from(
                        "<Error><Code>InternalError</Code><Message>injected</Message></Error>",
                    ))
                    .expect("response");
            }
            let url = format!(
                "{upstream}{}",
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
            );
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
            let method =
                reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("method");
            let mut fwd = client.request(method, url).body(body);
            for (k, v) in parts.headers.iter() {
                fwd = fwd.header(k.as_str(), v.as_bytes());
            }
            let resp = fwd.send().await.expect("upstream");
            let mut out = Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                out = out.header(k.as_str(), v.as_bytes());
            }
            out.body(Body::from(resp.bytes().await.expect("upstream body")))
                .expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn assert_status(resp: &nixery_e2e::harness::Resp, status: u16, what: &str, stack: &Stack) {
    assert_eq!(
        resp.status,
        status,
        "{what}: body {}\nbuilder log:\n{}",
        resp.text(),
        stack.builder.proc.log()
    );
}

#[test]
fn containerd_pulls_an_image_built_by_the_builder_lambda() {
    let stack = Stack::start(Options {
        count_calls: true,
        ..Options::default()
    });
    let resp = stack.manifest("hello");
    assert_status(
        &resp,
        200,
        "first pull builds through the builder Lambda",
        &stack,
    );
    assert!(
        stack.index_items("layer#") > 0,
        "layer entries written to DynamoDB"
    );
    assert_eq!(
        stack.index_items("manifest#"),
        1,
        "pinned image cached in DynamoDB"
    );
    let layers = nixery_e2e::harness::manifest_layers(&resp.body);
    let head = http_head(
        &format!("http://{}/v2/hello/blobs/{}", stack.addr, layers[0]),
        &[],
    );
    assert_eq!(head.status, 200, "blob HEAD answered by the registry");
    assert!(
        head.header("content-length")
            .parse::<u64>()
            .expect("length")
            > 0
    );
    let get = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = get
        .get(format!(
            "http://{}/v2/hello/blobs/{}",
            stack.addr, layers[0]
        ))
        .send()
        .expect("GET blob");
    assert_eq!(
        redirect.status(),
        307,
        "blob GET redirects to a presigned URL"
    );

    // A warm pull by a client that has nothing: count what it costs.
    for c in &stack.counts {
        c.lock().expect("counts").clear();
    }
    let ctrd = Containerd::start();
    let image = format!("{}/hello:latest", stack.addr);
    ctrd.pull(&image);
    let [registry, s3, ddb] = stack
        .counts
        .clone()
        .map(|c| c.lock().expect("counts").clone());
    let total = |m: &std::collections::BTreeMap<String, usize>| m.values().sum::<usize>();
    eprintln!("calls per warm pull of hello ({} layers): registry {registry:?}, S3 {s3:?}, DynamoDB {ddb:?}", layers.len());
    let blobs = layers.len() + 1;
    assert!(
        total(&registry) <= blobs + 4,
        "registry requests: {registry:?} for {blobs} blobs"
    );
    assert!(
        total(&s3) <= 2 * blobs + 2,
        "S3 calls: {s3:?} for {blobs} blobs"
    );
    assert_eq!(s3.get("PUT"), None, "a warm pull writes nothing");
    assert!(total(&ddb) <= 2, "DynamoDB calls: {ddb:?}");

    let out = ctrd.run(&image, "serverless-hello", &["hello"]);
    assert!(out.contains("Hello, world!"), "hello printed {out:?}");
}

#[test]
fn failed_uploads_write_no_index_entries_and_the_next_pull_succeeds() {
    let stack = Stack::start(Options {
        s3_proxy: true,
        ..Options::default()
    });
    stack.fail_puts.store(true, Ordering::SeqCst);
    let resp = stack.manifest("hello");
    assert!(
        resp.status >= 500,
        "a build whose uploads fail must fail, got {}",
        resp.status
    );
    assert!(
        resp.text().contains("UNKNOWN"),
        "registry error JSON: {}",
        resp.text()
    );
    assert_eq!(
        stack.index_items("layer#"),
        0,
        "no layer entry without its blob"
    );
    assert_eq!(stack.index_items("manifest#"), 0, "no manifest entry");
    stack.fail_puts.store(false, Ordering::SeqCst);
    let resp = stack.manifest("hello");
    assert_status(&resp, 200, "the pull after the fault", &stack);
    assert!(stack.index_items("layer#") > 0);
}

#[test]
fn a_builder_that_dies_mid_build_is_replaced_after_its_lease_expires() {
    let once = tempfile::tempdir().expect("temp dir");
    let env = vec![
        (
            "NIXERY_FAULT_ABORT_AFTER_UPLOADS".to_string(),
            "1".to_string(),
        ),
        (
            "NIXERY_FAULT_ONCE_FILE".to_string(),
            once.path().join("fired").display().to_string(),
        ),
    ];
    // The emulator never answers for a dead function (Lambda would, at its
    // timeout): the registry gives up after its invoke timeout.
    let opts = Options {
        lease_ttl: Duration::from_secs(5),
        invoke_timeout: Duration::from_secs(30),
        builder_env: env,
        ..Options::default()
    };
    let mut stack = Stack::start(opts);
    let first = stack.manifest("hello");
    assert!(
        first.status >= 500,
        "the dying builder's pull fails, got {} {}",
        first.status,
        first.text()
    );
    assert!(
        once.path().join("fired").exists(),
        "the fault fired:\n{}",
        stack.builder.proc.log()
    );
    assert_eq!(stack.index_items("manifest#"), 0);
    assert_eq!(
        stack.index_items("lease#"),
        1,
        "the dead builder's lease is still there"
    );
    // Lambda would run the next invocation in a new instance; the emulator
    // does not restart a dead function, so start a fresh one.
    stack.replace_builder();
    // The next pull takes the expired lease over and rebuilds.
    let second = stack.manifest("hello");
    assert_status(&second, 200, "pull after the builder died", &stack);
    assert_eq!(
        stack.index_items("manifest#"),
        1,
        "the rebuilt image is cached"
    );
    assert_eq!(
        stack.index_items("lease#"),
        0,
        "the new builder released the lease"
    );
}

#[test]
fn a_build_longer_than_the_wait_budget_answers_429_then_the_cached_image() {
    let stack = Stack::start(Options {
        build_wait: Duration::from_millis(300),
        ..Options::default()
    });
    let first = stack.manifest("hello");
    assert_eq!(first.status, 429, "over budget: {}", first.text());
    assert!(first.text().contains("TOOMANYREQUESTS"));
    assert!(
        !first.header("retry-after").is_empty(),
        "Retry-After is set"
    );
    // The build goes on; a later pull gets the result (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let resp = stack.manifest("hello");
        if resp.status == 200 {
            break;
        }
        assert_eq!(resp.status, 429, "while building: {}", resp.text());
        assert!(
            Instant::now() < deadline,
            "image never became available:\n{}",
            stack.builder.proc.log()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}
