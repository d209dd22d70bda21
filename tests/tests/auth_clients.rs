//! Pay-per-pull with the real clients: `nixery serve --auth`, tenants made with the admin
//! CLI while the server runs (through its admin socket), and containerd, skopeo, docker and
//! podman each pulling with a good key, a wrong key and none; usage counted once per client
//! pull and never for a HEAD; a quota of one; tokens that expire between pulls; a suspended
//! tenant. Every repository name below is the same image (`cacert` and `iana-etc` are in
//! every image), so one build serves them all and each client's pulls are counted apart.

use std::time::Duration;

use nixery_core::events::TOKEN_ISSUED;
use nixery_e2e::harness::clients::{skopeo_copy, Docker, Podman};
use nixery_e2e::harness::{count_lines, http_head, nixery_ok, Containerd, Server};
use serde_json::Value;

fn storage(server: &Server) -> &str {
    server.storage.to_str().expect("utf-8 storage path")
}

/// `nixery tenant create NAME ARGS...` against the running server; the new key.
fn create_tenant(server: &Server, name: &str, args: &[&str]) -> String {
    let mut all = vec!["tenant", "create", name, "--storage", storage(server)];
    all.extend(args);
    let out: Value = serde_json::from_str(&nixery_ok(&all)).expect("tenant JSON");
    assert_eq!(out["tenant"], name);
    out["key"].as_str().expect("key").to_string()
}

/// Pulls per repository for `tenant`, from `nixery usage --format csv`.
fn pulls(server: &Server, tenant: &str) -> Vec<(String, u64)> {
    let csv = nixery_ok(&[
        "usage",
        "--tenant",
        tenant,
        "--format",
        "csv",
        "--storage",
        storage(server),
    ]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("tenant,day,repository,pulls,bytes,builds")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].to_string(), f[3].parse().expect("pulls"))
        })
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_lowercase()
        + &String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[test]
fn every_client_pulls_with_a_key_and_is_refused_without_one() {
    let server = Server::start_temp_with(&["--auth"]);
    let key = create_tenant(&server, "acme", &[]);
    let good = format!("acme:{key}");
    let reg = &server.addr;
    let refused = [
        "401",
        "unauthorized",
        "authentication required",
        "invalid username",
        "denied",
    ];

    // Token requests per client pull, for the README's cost per pull.
    let tokens = || count_lines(&server.log(), TOKEN_ISSUED);
    let mut per_client = vec![];

    let ctrd = Containerd::start();
    let image = format!("{reg}/hello:latest");
    assert!(
        !ctrd.try_pull(&image, None).status.success(),
        "ctr without a key"
    );
    let wrong = ctrd.try_pull(&image, Some("acme:nxr_0000000000000000_00"));
    assert!(
        !wrong.status.success() && refused.iter().any(|r| stderr(&wrong).contains(r)),
        "{}",
        stderr(&wrong)
    );
    let before = tokens();
    let ok = ctrd.try_pull(&image, Some(&good));
    assert!(ok.status.success(), "ctr with the key: {}", stderr(&ok));
    per_client.push(("ctr pull", tokens() - before));
    let out = ctrd.run(&image, "auth-hello", &["hello"]);
    assert!(out.contains("Hello, world!"), "{out}");

    let skopeo_image = format!("{reg}/hello/cacert:latest");
    skopeo_copy(&skopeo_image, None).failed_with(&refused);
    skopeo_copy(&skopeo_image, Some("acme:nxr_wrong")).failed_with(&refused);
    let before = tokens();
    skopeo_copy(&skopeo_image, Some(&good)).ok();
    per_client.push(("skopeo copy", tokens() - before));

    let docker = Docker::default();
    let docker_image = format!("{reg}/hello/iana-etc:latest");
    docker.pull(&docker_image).failed_with(&refused);
    docker.login(reg, "acme", "nxr_wrong").failed_with(&refused);
    let before = tokens();
    docker.login(reg, "acme", &key).ok();
    per_client.push(("docker login", tokens() - before));
    let before = tokens();
    docker.pull(&docker_image).ok();
    per_client.push(("docker pull", tokens() - before));
    let out = docker.run(&docker_image, &["hello"]).ok();
    assert!(out.contains("Hello, world!"), "{out}");

    let podman = Podman::default();
    let podman_image = format!("{reg}/hello/cacert/iana-etc:latest");
    podman.pull(&podman_image).failed_with(&refused);
    podman.login(reg, "acme", "nxr_wrong").failed_with(&refused);
    let before = tokens();
    podman.login(reg, "acme", &key).ok();
    per_client.push(("podman login", tokens() - before));
    let before = tokens();
    podman.pull(&podman_image).ok();
    per_client.push(("podman pull", tokens() - before));
    eprintln!("tokens issued: {per_client:?}");
    assert!(
        per_client
            .iter()
            .all(|(what, n)| *n >= 1 || what.ends_with("pull")),
        "every login fetches a token: {per_client:?}"
    );

    // A HEAD is not a pull.
    let auth = format!("Basic {}", base64_pair(&good));
    let head = http_head(
        &server.url("/v2/hello/manifests/latest"),
        &[("Authorization", &auth)],
    );
    assert_eq!(head.status, 200);
    let mut counted = pulls(&server, "acme");
    counted.sort();
    let want: Vec<(String, u64)> = [
        "hello",
        "hello/cacert",
        "hello/cacert/iana-etc",
        "hello/iana-etc",
    ]
    .into_iter()
    .map(|r| (r.to_string(), 1))
    .collect();
    assert_eq!(counted, want, "one pull per client pull");
}

fn base64_pair(pair: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(pair)
}

/// containerd retries a 429 at once, docker not at all; skopeo runs with `--retry-times 0`
/// and podman is stopped at its first logged 429 (both honour Retry-After, capped at a
/// minute, for five attempts, and podman retries the whole pull three more times).
#[test]
fn a_quota_of_one_is_reported_by_every_client() {
    let server = Server::start_temp_with(&["--auth"]);
    let key = create_tenant(&server, "small", &["--pulls-per-day", "1"]);
    let good = format!("small:{key}");
    let reg = server.addr.clone();
    let ctrd = Containerd::start();
    let image = format!("{reg}/hello:latest");
    assert!(
        ctrd.try_pull(&image, Some(&good)).status.success(),
        "the first pull"
    );
    let too_many = ["429", "toomanyrequests", "too many requests"];
    // Another image: containerd would not fetch a manifest it already holds.
    let second = ctrd.try_pull(&format!("{reg}/git:latest"), Some(&good));
    let text = stderr(&second);
    assert!(
        !second.status.success() && too_many.iter().any(|t| text.contains(t)),
        "{text}"
    );
    let docker = Docker::default();
    docker.login(&reg, "small", &key).ok();
    docker
        .pull(&format!("{reg}/hello/iana-etc:latest"))
        .failed_with(&too_many);
    std::thread::scope(|s| {
        s.spawn(|| skopeo_copy(&image, Some(&good)).failed_with(&too_many));
        s.spawn(|| {
            let podman = Podman::default();
            podman.login(&reg, "small", &key).ok();
            let log = podman.pull_until_too_many_requests(&image, Duration::from_secs(120));
            let lower = log.to_lowercase();
            assert!(
                too_many.iter().any(|t| lower.contains(t)),
                "podman logs the 429:\n{log}"
            );
        });
    });
    let total: u64 = pulls(&server, "small").iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1, "refused pulls are not counted");
}

/// Tokens live 60 s (the least allowed); the docker engine keeps one per repository and,
/// once it has expired, pulls again with a new one. (A token refused as expired is answered
/// `invalid_token`, see functions/core/tests/auth.rs; containerd 1.6 retries such a request
/// with its cached token instead of fetching a new one, so a pull that outlasts the token
/// lifetime fails there: the lifetime must exceed the longest pull.)
#[test]
fn tokens_expire_and_clients_get_new_ones() {
    let server = Server::start_temp_with(&["--auth", "--token-ttl", "60"]);
    let key = create_tenant(&server, "acme", &[]);
    let reg = &server.addr;
    let docker = Docker::default();
    docker.login(reg, "acme", &key).ok();
    let image = format!("{reg}/hello:latest");
    docker.pull(&image).ok();
    let issued = count_lines(&server.log(), TOKEN_ISSUED);
    // Past the lifetime and the 10 s of leeway.
    std::thread::sleep(Duration::from_secs(72));
    docker.remove(&image);
    docker.pull(&image).ok();
    let log = server.log();
    assert!(
        count_lines(&log, TOKEN_ISSUED) > issued,
        "a new token was issued:\n{log}"
    );
}

#[test]
fn a_suspended_tenant_is_denied() {
    let server = Server::start_temp_with(&["--auth"]);
    let key = create_tenant(&server, "gone", &[]);
    let out: Value = serde_json::from_str(&nixery_ok(&[
        "tenant",
        "suspend",
        "gone",
        "--storage",
        storage(&server),
    ]))
    .expect("JSON");
    assert_eq!(out["status"], "suspended");
    let reg = &server.addr;
    let image = format!("{reg}/hello:latest");
    let good = format!("gone:{key}");
    let denied = ["403", "denied", "forbidden"];
    let ctrd = Containerd::start();
    let pull = ctrd.try_pull(&image, Some(&good));
    assert!(
        !pull.status.success() && denied.iter().any(|d| stderr(&pull).contains(d)),
        "{}",
        stderr(&pull)
    );
    skopeo_copy(&image, Some(&good)).failed_with(&denied);
    Docker::default()
        .login(reg, "gone", &key)
        .failed_with(&denied);
    Podman::default()
        .login(reg, "gone", &key)
        .failed_with(&denied);
    // Resumed, the same key works again.
    nixery_ok(&["tenant", "resume", "gone", "--storage", storage(&server)]);
    assert!(ctrd.try_pull(&image, Some(&good)).status.success());
}
