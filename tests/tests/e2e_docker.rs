//! docker, the client the registry is for, against `nixery serve` through the machine's
//! Docker Engine: pull and run, pull by digest, and a second image whose shared layers docker
//! already has. The registry listens on 127.0.0.1, which docker allows over plain HTTP
//! without an `insecure-registries` entry.

use nixery_e2e::harness::clients::Docker;
use nixery_e2e::harness::{http_get, manifest_layers, Server};
use serde_json::Value;

fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected output containing {needle:?}, got:\n{haystack}"
    );
}

/// How docker names a layer in its progress lines: the first 12 hex digits of its digest.
fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..12]
}

#[test]
fn docker_pulls_and_runs_hello_by_tag_and_by_digest() {
    let server = Server::start_temp();
    let docker = Docker::default();
    let image = format!("{}/shell/hello:latest", server.addr);

    docker.pull(&image).ok();
    let out = docker.run(&image, &["hello"]).ok();
    assert_contains(&out, "Hello, world!", "`hello` in shell/hello");

    let digest = server
        .manifest("shell/hello", "latest")
        .header("docker-content-digest");
    let by_digest = format!("{}/shell/hello@{digest}", server.addr);
    let pulled = docker.pull(&by_digest).ok();
    assert_contains(&pulled, &digest, "docker pull by digest");
    let out = docker
        .run(&by_digest, &["bash", "-c", "echo from-bash"])
        .ok();
    assert_contains(&out, "from-bash", "bash in the image pulled by digest");
}

/// docker's layer store is keyed by chain (a layer and all below it), so it reuses layers only
/// where two images start the same. The registry lists the layers it reuses first, so an
/// image whose closure holds the whole of an earlier one starts with that one's layers.
#[test]
fn docker_already_has_the_layers_a_second_image_shares() {
    let server = Server::start_temp();
    let docker = Docker::default();
    let (first, second) = ("shell/hello", "shell/curl/hello");
    // In this order: the second image is built knowing the first's layers.
    let a = manifest_layers(&server.manifest(first, "latest").body);
    let second_manifest = server.manifest(second, "latest").body;
    let b = manifest_layers(&second_manifest);
    let common: Vec<&String> = a
        .iter()
        .zip(&b)
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    assert!(
        common.len() >= 2 && common.len() < b.len(),
        "{second} starts with {first}'s layers and has more: {a:?} / {b:?}"
    );
    // Layers are content-addressed: an image left in the engine by an earlier pull from this
    // package set (any registry) may already hold the second image's own layers.
    let chain = &diff_ids(&server, second, &second_manifest)[..=common.len()];
    let leftovers = docker.images_with_chain(chain);
    assert!(
        leftovers.is_empty(),
        "the engine already holds layers only {second} should bring, in {leftovers:?}; \
         `docker rmi` them and run again (docker would report them \"Already exists\")"
    );

    docker.pull(&format!("{}/{first}:latest", server.addr)).ok();
    let second_image = format!("{}/{second}:latest", server.addr);
    let pulled = docker.pull(&second_image).ok();
    for layer in &common {
        let line = format!("{}: Already exists", short(layer));
        assert_contains(&pulled, &line, "a layer of the first image");
    }
    for layer in &b[common.len()..] {
        let line = format!("{}: Pull complete", short(layer));
        assert_contains(&pulled, &line, "a layer only the second image has");
    }
    let out = docker.run(&second_image, &["hello"]).ok();
    assert_contains(&out, "Hello, world!", "`hello` in the second image");
}

/// The uncompressed layer digests (`rootfs.diff_ids`) of `name`'s image, from the config its
/// `manifest` names.
fn diff_ids(server: &Server, name: &str, manifest: &[u8]) -> Vec<String> {
    let manifest: Value = serde_json::from_slice(manifest).expect("manifest is JSON");
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let resp = http_get(&server.url(&format!("/v2/{name}/blobs/{config}")), &[]);
    assert_eq!(resp.status, 200, "GET config {config}");
    let config: Value = serde_json::from_slice(&resp.body).expect("config is JSON");
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("config has rootfs.diff_ids")
        .iter()
        .map(|d| d.as_str().expect("diff_id is a string").to_string())
        .collect()
}
