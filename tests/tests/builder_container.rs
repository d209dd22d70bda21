//! The builder Lambda as the container image production deploys (`scripts/builder-image.sh`),
//! run by Docker the way Lambda runs it (see `harness::lambda_container`) behind the Runtime
//! Interface Emulator, and invoked by the registry Lambda's own wiring
//! (`nixery_registry_lambda::registry_with_clients`) through the Lambda SDK. The image's Nix
//! evaluates a channel-style package set served on loopback (`fetchTarball` into /tmp), the
//! closure comes from a signed binary cache on loopback, blobs go to s3s-fs and the index to
//! moto. Then docker pulls the image through the registry (manifest from the index, blobs by
//! 307 to presigned s3s-fs URLs) and runs it. Prints the cold-init time and the /tmp peak.

use std::time::{Duration, Instant};

use nixery_core::source::PackageSource;
use nixery_e2e::harness::aws::{
    create_resources, dynamodb_client, index_items, s3_client, sdk, AwsServer, ACCESS_KEY, BUCKET,
    SECRET_KEY, TABLE,
};
use nixery_e2e::harness::binary_cache::BinaryCacheServer;
use nixery_e2e::harness::channel::{portable_pkgs_copy, ChannelServer};
use nixery_e2e::harness::clients::Docker;
use nixery_e2e::harness::lambda_container::{
    BuilderImage, LambdaContainer, RIE_FUNCTION, TMP_SIZE,
};
use nixery_e2e::harness::{count_lines, http_get, manifest_layers, tail, Resp, ACCEPT_ALL};
use nixery_registry_lambda::{registry_with_clients, Settings};

/// Lambda's limits: the init phase, and the longest a function may run.
const INIT_LIMIT: Duration = Duration::from_secs(10);
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(900);
/// The nixpkgs commit the test channel claims to be at.
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The registry, served on loopback by its own runtime, with what it talks to.
struct Deployment {
    addr: String,
    rt: tokio::runtime::Runtime,
    ddb: aws_sdk_dynamodb::Client,
    builder: LambdaContainer,
    channel: ChannelServer,
    _image: BuilderImage,
    _cache: BinaryCacheServer,
    s3: AwsServer,
    _moto: AwsServer,
    _pkgs: tempfile::TempDir,
}

impl Deployment {
    fn start() -> Deployment {
        let image = BuilderImage::build();
        let (s3, moto) = (AwsServer::s3s_fs(), AwsServer::moto());
        let cache = BinaryCacheServer::start(&["hello", "cacert", "iana-etc"]);
        let pkgs = tempfile::tempdir().expect("temp dir");
        let channel = ChannelServer::start();
        channel.publish("r1", COMMIT, &portable_pkgs_copy(pkgs.path()));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let ddb = rt.block_on(async {
            let ddb = dynamodb_client(&moto.endpoint).await;
            create_resources(&s3_client(&s3.endpoint).await, &ddb).await;
            ddb
        });
        let env = builder_env(&s3.endpoint, &moto.endpoint, &cache, &channel.url);
        let builder = LambdaContainer::start(&image, &env);
        let addr = rt.block_on(registry(&builder, &channel, &s3, &moto));
        Deployment {
            addr,
            rt,
            ddb,
            builder,
            channel,
            _image: image,
            _cache: cache,
            s3,
            _moto: moto,
            _pkgs: pkgs,
        }
    }

    fn manifest(&self, name: &str) -> Resp {
        let url = format!("http://{}/v2/{name}/manifests/latest", self.addr);
        http_get(&url, &[("Accept", ACCEPT_ALL)])
    }

    /// Items in the index whose key starts with `prefix`.
    fn index_items(&self, prefix: &str) -> usize {
        self.rt.block_on(index_items(&self.ddb, prefix))
    }
}

/// The registry Lambda's wiring on the test servers, its builder client aimed at the RIE.
async fn registry(
    builder: &LambdaContainer,
    channel: &ChannelServer,
    s3: &AwsServer,
    moto: &AwsServer,
) -> String {
    let settings = Settings {
        bucket: BUCKET.into(),
        table: TABLE.into(),
        builder_function: RIE_FUNCTION.into(),
        source: PackageSource::Channel(channel.url.clone()),
        pin_ttl: Duration::from_secs(3600),
        build_wait: FUNCTION_TIMEOUT,
        presign_ttl: Duration::from_secs(300),
        auth: None,
        lease_ttl: FUNCTION_TIMEOUT,
        invoke_timeout: FUNCTION_TIMEOUT,
    };
    let clients = nixery_aws::clients::Clients {
        s3: s3_client(&s3.endpoint).await,
        dynamodb: dynamodb_client(&moto.endpoint).await,
        lambda: nixery_aws::clients::lambda(&sdk(&builder.endpoint).await),
        ssm: aws_sdk_ssm::Client::new(&sdk(&moto.endpoint).await),
    };
    let registry = registry_with_clients(&settings, &clients)
        .await
        .expect("registry");
    let app = nixery_core::registry::router(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

/// The function's environment as the Terraform sets it, with loopback endpoints. The source
/// is the channel: the builder looks it up and Nix fetches its tarball.
fn builder_env(
    s3: &str,
    dynamodb: &str,
    cache: &BinaryCacheServer,
    channel: &str,
) -> Vec<(String, String)> {
    [
        ("NIXERY_BUCKET", BUCKET),
        ("NIXERY_TABLE", TABLE),
        ("NIXERY_CHANNEL", channel),
        ("NIXERY_BINARY_CACHE", &cache.url),
        ("NIXERY_TRUSTED_KEYS", &cache.public_key),
        ("AWS_ENDPOINT_URL_S3", s3),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A blob GET answers 307 to a presigned URL on s3s-fs.
fn assert_blob_redirects(addr: &str, digest: &str, s3: &str) {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = format!("http://{addr}/v2/hello/blobs/{digest}");
    let resp = client.get(&url).send().expect("GET blob");
    assert_eq!(resp.status(), 307, "blob GET redirects");
    let location = resp.headers()["location"].to_str().expect("location");
    assert!(
        location.starts_with(s3) && location.contains("X-Amz-Signature="),
        "presigned s3s-fs URL: {location}"
    );
}

#[test]
fn the_builder_image_runs_as_lambda_would_and_docker_pulls_its_image() {
    let deploy = Deployment::start();
    let started = Instant::now();
    let resp = deploy.manifest("hello");
    let build = started.elapsed();
    let log = deploy.builder.log();
    assert_eq!(
        resp.status,
        200,
        "build through the container: {}\ncontainer log:\n{}",
        resp.text(),
        tail(&log, 80)
    );
    assert!(build < FUNCTION_TIMEOUT, "the build took {build:?}");
    assert!(
        count_lines(&log, "nix-instantiate") > 0,
        "the image's Nix evaluated:\n{}",
        tail(&log, 40)
    );
    assert!(deploy.channel.lookups() > 0, "the channel was looked up");
    assert!(
        deploy.index_items("layer#") > 0,
        "layer entries in DynamoDB"
    );
    assert_eq!(deploy.index_items("manifest#"), 1, "manifest in DynamoDB");
    let layers = manifest_layers(&resp.body);
    assert_blob_redirects(&deploy.addr, &layers[0], &deploy.s3.endpoint);

    let init_ms = deploy
        .builder
        .init_duration_ms()
        .unwrap_or_else(|| panic!("no INIT REPORT in the RIE log:\n{}", tail(&log, 40)));
    let tmp_peak = deploy.builder.tmp_peak();
    eprintln!("{}", deploy.builder.report().unwrap_or_default());
    eprintln!(
        "builder container: cold init {init_ms:.0} ms (RIE INIT REPORT), first build {} ms, \
         /tmp peak {:.1} MiB of {TMP_SIZE}",
        build.as_millis(),
        tmp_peak as f64 / (1024.0 * 1024.0)
    );
    assert!(init_ms < INIT_LIMIT.as_millis() as f64, "init {init_ms} ms");
    assert!(tmp_peak > 0, "/tmp was sampled");

    let docker = Docker::default();
    let image = format!("{}/hello:latest", deploy.addr);
    docker.pull(&image).ok();
    let out = docker.run(&image, &["hello"]).ok();
    assert!(out.contains("Hello, world!"), "{out}");
}
