//! The serverless path, on this machine: the builder Lambda binary under cargo-lambda's
//! runtime emulator, invoked through the Lambda Invoke API by the registry as the registry
//! Lambda wires it (`nixery_registry_lambda::registry_with_clients`); blobs in s3s-fs, the
//! index in moto_server, store paths from a signed binary cache made by `nix copy` and served
//! on loopback; the registry router served on loopback; containerd pulls (following 307s to
//! presigned s3s-fs URLs) and runs the image. Faults: S3 failing uploads, a builder dying
//! mid-build, the wait budget running out, unknown packages.

use nixery_aws::accounts::DynamoAccounts;
use nixery_core::accounts::{Accounts, Tenant, UsageQuery};
use nixery_core::registry::auth::SigningKeys;
use nixery_core::source::PackageSource;
use nixery_e2e::harness::aws::{
    create_resources, dynamodb_client, index_items, s3_client, sdk, AwsServer, BUCKET, REGION,
    TABLE,
};
use nixery_e2e::harness::binary_cache::BinaryCacheServer;
use nixery_e2e::harness::lambda::LambdaWatch;
use nixery_e2e::harness::proxy::Proxy;
use nixery_e2e::harness::{
    http_get, http_head, manifest_layers, pkgs_path, tail, Containerd, Resp, ACCEPT_ALL,
};
use nixery_registry_lambda::{registry_with_clients, AuthConfig, Settings};
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

const BUILDER: &str = "nixery-builder-lambda";
/// Waiting for an image that is still building, in a test.
const BUILD_DEADLINE: Duration = Duration::from_secs(900);

struct Options {
    build_wait: Duration,
    lease_ttl: Duration,
    invoke_timeout: Duration,
    builder_env: Vec<(String, String)>,
    /// Token auth as the Terraform turns it on: accounts table, signing key in SSM.
    auth: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            build_wait: Duration::from_secs(900),
            lease_ttl: Duration::from_secs(900),
            invoke_timeout: Duration::from_secs(900),
            builder_env: vec![],
            auth: false,
        }
    }
}

/// Everything of one deployment. Proxies sit between the registry and S3, DynamoDB and the
/// Invoke API (to count calls and to swap a dead builder for a fresh one, as Lambda would),
/// between the builder and S3 (to fail uploads), and in front of the registry.
struct Stack {
    addr: String,
    rt: tokio::runtime::Runtime,
    ddb: aws_sdk_dynamodb::Client,
    registry: Proxy,
    registry_s3: Proxy,
    registry_ddb: Proxy,
    builder_s3: Proxy,
    invoke: Proxy,
    builder: LambdaWatch,
    base_env: Vec<(String, String)>,
    _cache: BinaryCacheServer,
    _s3: AwsServer,
    _moto: AwsServer,
    _tmp: tempfile::TempDir,
}

impl Stack {
    fn start(opts: Options) -> Stack {
        let (s3, moto) = (AwsServer::s3s_fs(), AwsServer::moto());
        let cache = BinaryCacheServer::start(&["hello", "cacert", "iana-etc"]);
        let tmp = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let proxy = |upstream: &str| rt.block_on(Proxy::start(upstream));
        let (registry_s3, registry_ddb) = (proxy(&s3.endpoint), proxy(&moto.endpoint));
        let builder_s3 = proxy(&s3.endpoint);
        let ddb = rt.block_on(async {
            let ddb = dynamodb_client(&moto.endpoint).await;
            create_resources(&s3_client(&s3.endpoint).await, &ddb).await;
            ddb
        });
        let base_env = builder_env(&builder_s3.url, &moto.endpoint, &cache, &tmp);
        let mut env = base_env.clone();
        env.extend(opts.builder_env.iter().cloned());
        let builder = LambdaWatch::start(BUILDER, &env);
        builder.warm_up("{\"warm_up\": true}");
        let invoke = proxy(&builder.endpoint);
        // Bound first: with auth on, the token realm is this address.
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let public_url = format!("http://{}", listener.local_addr().expect("addr"));
        let auth = opts.auth.then(|| {
            rt.block_on(auth_resources(&moto.endpoint));
            AuthConfig {
                public_url: public_url.clone(),
                accounts_table: ACCOUNTS_TABLE.into(),
                signing_key_parameter: SIGNING_KEY_PARAMETER.into(),
                token_ttl: Duration::from_secs(300),
            }
        });
        let settings = Settings {
            bucket: BUCKET.into(),
            table: TABLE.into(),
            builder_function: BUILDER.into(),
            // The builder's source in these tests is a path (always pinned); the registry
            // keys aliases by this identity and trusts them for the pin TTL.
            source: PackageSource::Channel("offline-test-set".into()),
            pin_ttl: Duration::from_secs(3600),
            build_wait: opts.build_wait,
            presign_ttl: Duration::from_secs(300),
            auth,
            lease_ttl: opts.lease_ttl,
            invoke_timeout: opts.invoke_timeout,
        };
        let upstream = rt.block_on(async {
            let clients = nixery_aws::clients::Clients {
                s3: s3_client(&registry_s3.url).await,
                dynamodb: dynamodb_client(&registry_ddb.url).await,
                lambda: nixery_aws::clients::lambda(&sdk(&invoke.url).await),
                ssm: aws_sdk_ssm::Client::new(&sdk(&moto.endpoint).await),
            };
            let registry = registry_with_clients(&settings, &clients)
                .await
                .expect("registry");
            tokio::spawn(
                axum::serve(listener, nixery_core::registry::router(registry)).into_future(),
            );
            public_url
        });
        let registry = proxy(&upstream);
        Stack {
            addr: registry.url.trim_start_matches("http://").to_string(),
            rt,
            ddb,
            registry,
            registry_s3,
            registry_ddb,
            builder_s3,
            invoke,
            builder,
            base_env,
            _cache: cache,
            _s3: s3,
            _moto: moto,
            _tmp: tmp,
        }
    }

    /// Start a fresh builder (without injected faults) and send invocations to it, as
    /// Lambda starts a new instance after one died.
    fn replace_builder(&mut self) {
        let fresh = LambdaWatch::start(BUILDER, &self.base_env);
        fresh.warm_up("{\"warm_up\": true}");
        self.invoke.switch(&fresh.endpoint);
        self.builder = fresh;
    }

    fn manifest(&self, name: &str) -> Resp {
        http_get(
            &format!("http://{}/v2/{name}/manifests/latest", self.addr),
            &[("Accept", ACCEPT_ALL)],
        )
    }

    /// A manifest GET with Basic credentials `user:key`.
    fn manifest_with(&self, user: &str) -> Resp {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(user);
        http_get(
            &format!("http://{}/v2/hello/manifests/latest", self.addr),
            &[
                ("Accept", ACCEPT_ALL),
                ("Authorization", &format!("Basic {basic}")),
            ],
        )
    }

    /// Items in the index whose key starts with `prefix`.
    fn index_items(&self, prefix: &str) -> usize {
        self.rt.block_on(index_items(&self.ddb, prefix))
    }

    fn assert_status(&self, resp: &Resp, status: u16, what: &str) {
        assert_eq!(
            resp.status,
            status,
            "{what}: body {}\nbuilder log:\n{}",
            resp.text(),
            tail(&self.builder.log(), 60)
        );
    }
}

/// The builder's environment, as the Terraform sets it, with endpoints on loopback.
fn builder_env(
    s3: &str,
    dynamodb: &str,
    cache: &BinaryCacheServer,
    tmp: &tempfile::TempDir,
) -> Vec<(String, String)> {
    [
        ("NIXERY_BUCKET", BUCKET.to_string()),
        ("NIXERY_TABLE", TABLE.to_string()),
        ("NIXERY_PKGS_PATH", pkgs_path().display().to_string()),
        ("NIXERY_BINARY_CACHE", cache.url.clone()),
        ("NIXERY_TRUSTED_KEYS", cache.public_key.clone()),
        ("AWS_ENDPOINT_URL_S3", s3.to_string()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.to_string()),
        (
            "AWS_ACCESS_KEY_ID",
            nixery_e2e::harness::aws::ACCESS_KEY.to_string(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            nixery_e2e::harness::aws::SECRET_KEY.to_string(),
        ),
        ("AWS_REGION", REGION.to_string()),
        ("TMPDIR", tmp.path().display().to_string()),
        ("RUST_LOG", "info".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

const ACCOUNTS_TABLE: &str = "nixery-accounts";
const SIGNING_KEY_PARAMETER: &str = "/nixery/token-signing-key";

/// What the Terraform creates for token auth: the accounts table and the signing key as an
/// SSM SecureString (moto serves SSM too).
async fn auth_resources(moto: &str) {
    DynamoAccounts::create_table(&dynamodb_client(moto).await, ACCOUNTS_TABLE)
        .await
        .expect("accounts table");
    aws_sdk_ssm::Client::new(&sdk(moto).await)
        .put_parameter()
        .name(SIGNING_KEY_PARAMETER)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(SigningKeys::generate_secret())
        .send()
        .await
        .expect("signing key parameter");
}

fn total(m: &BTreeMap<String, usize>) -> usize {
    m.values().sum()
}

#[test]
fn containerd_pulls_an_image_built_by_the_builder_lambda() {
    let stack = Stack::start(Options::default());
    let resp = stack.manifest("hello");
    stack.assert_status(&resp, 200, "first pull builds through the builder Lambda");
    assert!(
        stack.index_items("layer#") > 0,
        "layer entries written to DynamoDB"
    );
    assert_eq!(
        stack.index_items("manifest#"),
        1,
        "pinned image cached in DynamoDB"
    );
    let layers = manifest_layers(&resp.body);
    let blob_url = format!("http://{}/v2/hello/blobs/{}", stack.addr, layers[0]);
    let head = http_head(&blob_url, &[]);
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
    let redirect = get.get(&blob_url).send().expect("GET blob");
    assert_eq!(
        redirect.status(),
        307,
        "blob GET redirects to a presigned URL"
    );

    // A warm pull by a client that has nothing: count what it costs.
    for p in [&stack.registry, &stack.registry_s3, &stack.registry_ddb] {
        p.clear_counts();
    }
    let ctrd = Containerd::start();
    let image = format!("{}/hello:latest", stack.addr);
    ctrd.pull(&image);
    let (registry, s3, ddb) = (
        stack.registry.counts(),
        stack.registry_s3.counts(),
        stack.registry_ddb.counts(),
    );
    eprintln!(
        "calls per warm pull of hello ({} layers): registry {registry:?}, S3 {s3:?}, DynamoDB {ddb:?}",
        layers.len()
    );
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
fn unknown_packages_are_named_once_through_the_builder_lambda() {
    let stack = Stack::start(Options::default());
    let resp = stack.manifest("hello/nosuchpackage");
    stack.assert_status(&resp, 404, "unknown package");
    let body = resp.json();
    let error = &body["errors"][0];
    assert_eq!(error["code"], "MANIFEST_UNKNOWN", "{body}");
    assert_eq!(error["detail"]["missing"][0], "nosuchpackage", "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert_eq!(
        message.matches("packages not found").count(),
        1,
        "message says it once: {message:?}"
    );
    assert!(message.ends_with(": nosuchpackage"), "{message:?}");
}

#[test]
fn failed_uploads_write_no_index_entries_and_the_next_pull_succeeds() {
    let stack = Stack::start(Options::default());
    stack.builder_s3.fail_puts(true);
    let resp = stack.manifest("hello");
    assert!(
        resp.status >= 500,
        "a build whose uploads fail must fail, got {}",
        resp.status
    );
    assert_eq!(resp.error_code(), "UNKNOWN", "{}", resp.text());
    assert_eq!(
        stack.index_items("layer#"),
        0,
        "no layer entry without its blob"
    );
    assert_eq!(stack.index_items("manifest#"), 0, "no manifest entry");
    stack.builder_s3.fail_puts(false);
    let resp = stack.manifest("hello");
    stack.assert_status(&resp, 200, "the pull after the fault");
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
        stack.builder.log()
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
    stack.assert_status(&second, 200, "pull after the builder died");
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
    assert_eq!(first.error_code(), "TOOMANYREQUESTS");
    assert!(
        !first.header("retry-after").is_empty(),
        "Retry-After is set"
    );
    // The build goes on; a later pull gets the result (bounded wait).
    let deadline = Instant::now() + BUILD_DEADLINE;
    loop {
        let resp = stack.manifest("hello");
        if resp.status == 200 {
            break;
        }
        assert_eq!(resp.status, 429, "while building: {}", resp.text());
        assert!(
            Instant::now() < deadline,
            "image never became available:\n{}",
            stack.builder.log()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn containerd_pulls_with_credentials_and_the_pull_is_metered_in_dynamodb() {
    let stack = Stack::start(Options {
        auth: true,
        ..Options::default()
    });
    let moto = stack._moto.endpoint.clone();
    let accounts = stack
        .rt
        .block_on(async { DynamoAccounts::new(dynamodb_client(&moto).await, ACCOUNTS_TABLE) });
    let (tenant, key) = Tenant::create("acme", Some(10), None);
    assert!(stack
        .rt
        .block_on(accounts.create_tenant(&tenant))
        .expect("create tenant"));

    let anonymous = stack.manifest("hello");
    stack.assert_status(&anonymous, 401, "no credentials");
    assert!(
        anonymous
            .header("www-authenticate")
            .contains("scope=\"repository:hello:pull\""),
        "challenge: {}",
        anonymous.header("www-authenticate")
    );

    let ctrd = Containerd::start();
    let image = format!("{}/hello:latest", stack.addr);
    let user = format!("acme:{}", key.reveal());
    let pulled = ctrd.try_pull(&image, Some(&user));
    assert!(
        pulled.status.success(),
        "ctr with the key: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let out = ctrd.run(&image, "serverless-auth-hello", &["hello"]);
    assert!(out.contains("Hello, world!"), "hello printed {out:?}");

    let rows = stack
        .rt
        .block_on(accounts.usage(&UsageQuery {
            tenant: Some("acme".into()),
            ..UsageQuery::default()
        }))
        .expect("usage");
    assert_eq!(rows.len(), 1, "one repository on one day: {rows:?}");
    assert_eq!(rows[0].repository, "hello");
    assert_eq!(rows[0].pulls, 1, "one client pull is one pull: {rows:?}");
    assert_eq!(rows[0].builds, 1, "the cold pull built once: {rows:?}");
    assert!(rows[0].bytes > 0, "blob bytes metered: {rows:?}");

    // A warm pull with credentials by a client that has nothing: what auth and metering add.
    for p in [&stack.registry, &stack.registry_ddb] {
        p.clear_counts();
    }
    let warm = Containerd::start();
    assert!(warm.try_pull(&image, Some(&user)).status.success());
    let (registry, ddb) = (stack.registry.counts(), stack.registry_ddb.counts());
    let blobs = manifest_layers(&stack.manifest_with(&user).body).len() + 1;
    eprintln!(
        "calls per warm pull with auth ({blobs} blobs): registry {registry:?}, DynamoDB {ddb:?}"
    );
    assert!(
        total(&registry) <= blobs + 6,
        "registry requests: {registry:?}"
    );
    assert!(total(&ddb) <= 2 * blobs + 6, "DynamoDB calls: {ddb:?}");

    let wrong = format!("acme:{}", Tenant::create("acme", None, None).1.reveal());
    let failed = ctrd.try_pull(&image, Some(&wrong));
    assert!(!failed.status.success(), "a wrong key must not pull");
}
