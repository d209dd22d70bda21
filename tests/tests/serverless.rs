//! The serverless path, on this machine: the builder Lambda binary under cargo-lambda's
//! runtime emulator, invoked through the Lambda Invoke API by the registry as the registry
//! Lambda wires it (`nixery_registry_lambda::registry_with_clients`); blobs in s3s-fs, the
//! index in moto_server, store paths from a signed binary cache made by `nix copy` and served
//! on loopback; the registry router served on loopback; containerd pulls (following 307s to
//! presigned s3s-fs URLs) and runs the image. Faults: S3 failing uploads, a builder dying
//! mid-build, the wait budget running out, unknown packages.

use nixery_aws::accounts::DynamoAccounts;
use nixery_aws::s3::object_key;
use nixery_core::accounts::{Accounts, Tenant, UsageQuery};
use nixery_core::digest::Digest;
use nixery_core::registry::auth::SigningKeys;
use nixery_core::source::PackageSource;
use nixery_e2e::harness::aws::{
    create_resources, dynamodb_client, index_items, s3_client, sdk, AwsServer, BUCKET, REGION,
    TABLE,
};
use nixery_e2e::harness::binary_cache::BinaryCacheServer;
use nixery_e2e::harness::lambda::LambdaWatch;
use nixery_e2e::harness::proxy::{Fault, Proxy};
use nixery_e2e::harness::{
    http_get, http_head, manifest_layers, pkgs_path, tail, Containerd, Resp, ACCEPT_ALL,
};
use nixery_registry_lambda::{registry_with_clients, AuthConfig, Settings};
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::path::Path;
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
    /// Attributes the signed binary cache holds closures of.
    cache: Vec<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            build_wait: Duration::from_secs(900),
            lease_ttl: Duration::from_secs(900),
            invoke_timeout: Duration::from_secs(900),
            builder_env: vec![],
            auth: false,
            cache: vec!["hello", "cacert", "iana-etc"],
        }
    }
}

/// Everything of one deployment. Proxies sit between the registry and S3, DynamoDB and the
/// Invoke API (to count calls and to swap a dead builder for a fresh one, as Lambda would),
/// between the builder and S3 and DynamoDB (to fail uploads, to throttle), and in front of the
/// registry.
struct Stack {
    addr: String,
    rt: tokio::runtime::Runtime,
    ddb: aws_sdk_dynamodb::Client,
    registry: Proxy,
    registry_s3: Proxy,
    registry_ddb: Proxy,
    builder_s3: Proxy,
    builder_ddb: Proxy,
    invoke: Proxy,
    builder: LambdaWatch,
    base_env: Vec<(String, String)>,
    _cache: BinaryCacheServer,
    s3: AwsServer,
    _moto: AwsServer,
    /// Each builder instance's TMPDIR is a directory in here, as each Lambda instance has its
    /// own /tmp.
    tmp: tempfile::TempDir,
    instances: usize,
}

impl Stack {
    fn start(opts: Options) -> Stack {
        let (s3, moto) = (AwsServer::s3s_fs(), AwsServer::moto());
        let cache = BinaryCacheServer::start(&opts.cache);
        let tmp = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let proxy = |upstream: &str| rt.block_on(Proxy::start(upstream));
        let (registry_s3, registry_ddb) = (proxy(&s3.endpoint), proxy(&moto.endpoint));
        let (builder_s3, builder_ddb) = (proxy(&s3.endpoint), proxy(&moto.endpoint));
        let ddb = rt.block_on(async {
            let ddb = dynamodb_client(&moto.endpoint).await;
            create_resources(&s3_client(&s3.endpoint).await, &ddb).await;
            ddb
        });
        let base_env = builder_env(&builder_s3.url, &builder_ddb.url, &cache);
        let mut env = instance_env(&base_env, tmp.path(), 0);
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
            builder_ddb,
            invoke,
            builder,
            base_env,
            _cache: cache,
            s3,
            _moto: moto,
            tmp,
            instances: 1,
        }
    }

    /// Start a fresh builder (without injected faults) and send invocations to it, as
    /// Lambda starts a new instance after one died.
    fn replace_builder(&mut self) {
        self.builder = start_instance(
            &self.invoke,
            &self.base_env,
            self.tmp.path(),
            self.instances,
        );
        self.instances += 1;
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

/// Start builder instance number `n` with its own TMPDIR and send invocations to it.
fn start_instance(invoke: &Proxy, env: &[(String, String)], tmp: &Path, n: usize) -> LambdaWatch {
    let fresh = LambdaWatch::start(BUILDER, &instance_env(env, tmp, n));
    fresh.warm_up("{\"warm_up\": true}");
    invoke.switch(&fresh.endpoint);
    fresh
}

/// `env` with the TMPDIR of instance `n` (created).
fn instance_env(env: &[(String, String)], tmp: &Path, n: usize) -> Vec<(String, String)> {
    let dir = tmp.join(format!("instance-{n}"));
    std::fs::create_dir_all(&dir).expect("instance TMPDIR");
    let mut env = env.to_vec();
    env.push(("TMPDIR".into(), dir.display().to_string()));
    env
}

/// The builder's environment, as the Terraform sets it, with endpoints on loopback.
fn builder_env(s3: &str, dynamodb: &str, cache: &BinaryCacheServer) -> Vec<(String, String)> {
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
    stack.builder_s3.inject(Some(Fault::s3_failed_puts()));
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
    stack.builder_s3.inject(None);
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

/// The images of the fault soak: ten package sets of the offline set, one of them zstd.
const SOAK_IMAGES: [&str; 10] = [
    "hello",
    "curl",
    "git",
    "htop",
    "jq",
    "nano",
    "moreutils",
    "hello/jq",
    "curl/git",
    "zstd/hello",
];
const SOAK_PULLS: usize = 100;

/// The attributes the soak's binary cache needs: every package of its images, and those every
/// image gets.
fn soak_packages() -> Vec<&'static str> {
    let named = SOAK_IMAGES.iter().flat_map(|image| image.split('/'));
    let mut packages: Vec<&str> = named.filter(|p| *p != "zstd").collect();
    packages.extend(nixery_core::name::ALWAYS_ADDED);
    packages.sort();
    packages.dedup();
    packages
}
/// Bounds the whole soak: every pull ends by then or the test fails.
const SOAK_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Issue 9's fault soak: 100 concurrent pulls of 10 images on the serverless path while S3
/// answers every 7th request with 503 SlowDown, DynamoDB throttles every 5th, every Invoke is
/// throttled for the first 20 s, and the builder dies mid-build once (Lambda then starts a
/// new instance, here a fresh emulator). Then: every blob pulled has its digest, no index
/// entry points at a missing blob, no lease is left, the live builder's TMPDIR is empty, and
/// peak memory stays bounded. Prints the figures.
#[test]
fn fault_soak_loses_nothing() {
    let once = tempfile::tempdir().expect("temp dir");
    let fired = once.path().join("fired");
    let stack = Stack::start(Options {
        // Production's wait budget; leases and invokes short enough to recover in a test.
        build_wait: Duration::from_secs(25),
        lease_ttl: Duration::from_secs(20),
        invoke_timeout: Duration::from_secs(30),
        builder_env: vec![
            ("NIXERY_FAULT_ABORT_AFTER_UPLOADS".into(), "3".into()),
            ("NIXERY_FAULT_ONCE_FILE".into(), fired.display().to_string()),
        ],
        cache: soak_packages(),
        ..Options::default()
    });
    let started = Instant::now();
    for p in [&stack.registry_s3, &stack.builder_s3] {
        p.inject(Some(Fault::s3_slow_down(7)));
    }
    for p in [&stack.registry_ddb, &stack.builder_ddb] {
        p.inject(Some(Fault::dynamodb_throttling(5)));
    }
    let throttled_until = started + Duration::from_secs(20);
    stack
        .invoke
        .inject(Some(Fault::lambda_throttling(1).until(throttled_until)));
    let done = std::sync::atomic::AtomicBool::new(false);
    let (outcomes, replacement, builder_peak) = std::thread::scope(|scope| {
        // Lambda replaces a dead instance; the emulator does not, so start a fresh one.
        let replacer = scope.spawn(|| {
            while !fired.exists() && !done.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
            }
            fired.exists().then(|| {
                std::thread::sleep(Duration::from_millis(500)); // the abort follows the file
                start_instance(&stack.invoke, &stack.base_env, stack.tmp.path(), 1)
            })
        });
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(processes_rss_kib("nixery-builder-"));
                std::thread::sleep(Duration::from_millis(250));
            }
            peak
        });
        let pulls: Vec<_> = (0..SOAK_PULLS)
            .map(|i| {
                let (addr, image) = (&stack.addr, SOAK_IMAGES[i % SOAK_IMAGES.len()]);
                scope.spawn(move || soak_pull(addr, image, started + SOAK_DEADLINE))
            })
            .collect();
        let outcomes: Vec<PullOutcome> = pulls
            .into_iter()
            .map(|p| p.join().expect("pull thread"))
            .collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let replacement = replacer.join().expect("replacer");
        (outcomes, replacement, sampler.join().expect("sampler"))
    });
    let elapsed = started.elapsed();
    let log = replacement
        .as_ref()
        .map_or_else(|| stack.builder.log(), LambdaWatch::log);
    let failed: Vec<String> = outcomes.iter().filter_map(|o| o.error.clone()).collect();
    assert!(
        failed.is_empty(),
        "{} of {SOAK_PULLS} pulls failed: {failed:#?}\nbuilder log:\n{}",
        failed.len(),
        tail(&log, 80)
    );
    assert!(
        fired.exists(),
        "the builder never died:\n{}",
        tail(&log, 40)
    );
    // Throttling and a dead builder are for retrying: 429 or 503, never a bare 500.
    let unexplained: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| o.samples.get(&500))
        .collect();
    assert!(
        unexplained.is_empty(),
        "500 during the soak: {unexplained:#?}"
    );
    // One image, one manifest: every pull of an image got the same digest.
    let mut digests: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for o in &outcomes {
        digests.entry(o.image).or_default().insert(&o.manifest);
    }
    assert!(digests.values().all(|d| d.len() == 1), "{digests:#?}");
    // Afterwards nothing is left behind: builds still running finish first (bounded).
    let leases_deadline = Instant::now() + Duration::from_secs(120);
    while stack.index_items("lease#") > 0 && Instant::now() < leases_deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(stack.index_items("lease#"), 0, "leases left behind");
    for p in [
        &stack.registry_s3,
        &stack.builder_s3,
        &stack.registry_ddb,
        &stack.builder_ddb,
    ] {
        p.inject(None);
    }
    let (entries, dangling) = stack.rt.block_on(dangling_index_entries(&stack));
    assert!(
        dangling.is_empty(),
        "index entries without their blob: {dangling:#?}"
    );
    // The resolver expression is written once per instance, at start, and reused.
    let mut leftovers = files_under(&stack.tmp.path().join("instance-1"));
    leftovers.retain(|f| !f.ends_with("nixery/nix/resolve.nix"));
    assert!(
        leftovers.is_empty(),
        "temp files left by the live builder: {leftovers:#?}"
    );
    let dead_leftovers = files_under(&stack.tmp.path().join("instance-0")).len();
    let registry_peak = rss_kib("self", "VmHWM");
    let retries: usize = outcomes.iter().map(|o| o.statuses.len()).sum();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut samples: BTreeMap<u16, &str> = BTreeMap::new();
    for o in &outcomes {
        for s in &o.statuses {
            *statuses.entry(*s).or_default() += 1;
        }
        for (s, text) in &o.samples {
            samples.entry(*s).or_insert(text);
        }
    }
    eprintln!("fault soak: one answer of each status before success: {samples:#?}");
    eprintln!(
        "fault soak: {SOAK_PULLS} pulls of {} images in {:.1} s, {} MB verified; \
         {retries} client retries, answers before success {statuses:?}; injected: S3 SlowDown \
         {} (registry) + {} (builder), DynamoDB throttling {} + {}, Invoke throttled {}; \
         builder died once ({dead_leftovers} files left in the dead instance's /tmp); \
         {entries} index entries, none dangling; peak RSS registry process {} MiB, builder {} MiB",
        SOAK_IMAGES.len(),
        elapsed.as_secs_f64(),
        bytes / 1_000_000,
        stack.registry_s3.injected(),
        stack.builder_s3.injected(),
        stack.registry_ddb.injected(),
        stack.builder_ddb.injected(),
        stack.invoke.injected(),
        registry_peak / 1024,
        builder_peak / 1024,
    );
    assert!(stack.invoke.injected() > 0 && stack.builder_ddb.injected() > 0);
    assert!(stack.registry_s3.injected() > 0 && stack.builder_s3.injected() > 0);
    // Bounded: far below a 512 MB registry Lambda and the builder's memory.
    assert!(
        registry_peak < 512 * 1024,
        "registry process peak {registry_peak} KiB"
    );
    assert!(
        builder_peak < 1024 * 1024,
        "builder peak {builder_peak} KiB"
    );
}

struct PullOutcome {
    image: &'static str,
    manifest: String,
    bytes: u64,
    /// Non-200 answers seen before the pull succeeded, and one body of each status.
    statuses: Vec<u16>,
    samples: BTreeMap<u16, String>,
    error: Option<String>,
}

/// Pull `image` as a client does: manifest, then config and layers through the redirect to
/// S3, checking every digest; 429 and 5xx are retried (after Retry-After, at most 2 s here)
/// until `deadline`.
fn soak_pull(addr: &str, image: &'static str, deadline: Instant) -> PullOutcome {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let mut out = PullOutcome {
        image,
        manifest: String::new(),
        bytes: 0,
        statuses: Vec::new(),
        samples: BTreeMap::new(),
        error: None,
    };
    let mut get = |url: &str, accept: &str| -> Result<(Vec<u8>, String), String> {
        loop {
            let resp = client.get(url).header("Accept", accept).send();
            let status = resp.as_ref().map_or(0, |r| r.status().as_u16());
            if status == 200 {
                let resp = resp.expect("ok");
                let digest = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = resp.bytes().map_err(|e| format!("{url}: body: {e}"))?;
                return Ok((body.to_vec(), digest));
            }
            let retry = status == 0 || status == 429 || status >= 500;
            let text = resp.map_or_else(|e| e.to_string(), |r| r.text().unwrap_or_default());
            if !retry || Instant::now() > deadline {
                return Err(format!("{url}: {status} {text}"));
            }
            out.statuses.push(status);
            out.samples.entry(status).or_insert(text);
            std::thread::sleep(Duration::from_millis(
                500 + 100 * (out.statuses.len() as u64 % 16),
            ));
        }
    };
    let base = format!("http://{addr}/v2/{image}");
    let result = (|| {
        let (manifest, digest) = get(&format!("{base}/manifests/latest"), ACCEPT_ALL)?;
        check_digest(&manifest, &digest)?;
        let json: serde_json::Value =
            serde_json::from_slice(&manifest).map_err(|e| e.to_string())?;
        let config = json["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut blobs = manifest_layers(&manifest);
        blobs.push(config);
        let mut bytes = manifest.len() as u64;
        for blob in &blobs {
            let (body, _) = get(&format!("{base}/blobs/{blob}"), "*/*")?;
            check_digest(&body, blob)?;
            bytes += body.len() as u64;
        }
        Ok::<_, String>((digest, bytes))
    })();
    match result {
        Ok((digest, bytes)) => (out.manifest, out.bytes) = (digest, bytes),
        Err(e) => out.error = Some(format!("{image}: {e}")),
    }
    out
}

fn check_digest(body: &[u8], digest: &str) -> Result<(), String> {
    let actual = nixery_e2e::harness::sha256_digest(body);
    match actual == digest {
        true => Ok(()),
        false => Err(format!("content has digest {actual}, expected {digest:?}")),
    }
}

/// `field` (VmRSS, VmHWM) of /proc/`pid`/status in KiB.
fn rss_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The largest peak RSS (KiB) of the processes whose name starts with `comm`.
fn processes_rss_kib(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with(comm))
        })
        .map(|e| rss_kib(&e.file_name().to_string_lossy(), "VmHWM"))
        .max()
        .unwrap_or(0)
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match path.is_dir() && !path.is_symlink() {
                true => todo.push(path),
                false => found.push(path),
            }
        }
    }
    found
}

/// Every index entry's blobs must be in S3: layer entries, manifest entries (both manifests,
/// and the config and layers each names) and aliases. The number of entries, and the dangling.
async fn dangling_index_entries(stack: &Stack) -> (usize, Vec<String>) {
    let s3 = s3_client(&stack.s3.endpoint).await;
    let items = stack
        .ddb
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect("scan");
    let mut dangling = Vec::new();
    // Where the registry keeps a blob; a digest that does not parse has no blob.
    let key = |digest: &str| digest.parse::<Digest>().ok().map(|d| object_key(&d));
    let exists = |digest: String| {
        let (s3, key) = (s3.clone(), key(&digest));
        async move {
            let Some(key) = key else { return false };
            let head = s3.head_object().bucket(BUCKET).key(key).send().await;
            head.is_ok()
        }
    };
    for item in items.items() {
        let pk = item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let data = item.get("data").and_then(|v| v.as_s().ok());
        let Some(data) = data else { continue };
        let json: serde_json::Value = serde_json::from_str(data).expect("entry JSON");
        let mut digests = Vec::new();
        if pk.starts_with("layer#") {
            digests.push(json["digest"].as_str().unwrap_or_default().to_string());
        }
        let manifests = match &json["manifest"] {
            serde_json::Value::Null => json.clone(),
            m => m.clone(),
        };
        for kind in ["oci", "docker"] {
            if let Some(d) = manifests[kind]["digest"].as_str() {
                digests.push(d.to_string());
                let Some(key) = key(d) else { continue };
                if let Ok(obj) = s3.get_object().bucket(BUCKET).key(key).send().await {
                    let body = obj
                        .body
                        .collect()
                        .await
                        .expect("manifest body")
                        .into_bytes();
                    let m: serde_json::Value = serde_json::from_slice(&body).expect("manifest");
                    digests.extend(manifest_layers(&body));
                    digests.extend(m["config"]["digest"].as_str().map(str::to_string));
                }
            }
        }
        for d in digests {
            if d.is_empty() || !exists(d.clone()).await {
                dangling.push(format!("{pk} -> {d:?}"));
            }
        }
    }
    (items.items().len(), dangling)
}
