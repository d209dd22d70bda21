//! zstd images (`zstd/` before the packages): an OCI manifest with `tar+zstd` layers, pulled
//! and run by containerd and podman, and by docker when its engine can unpack zstd (23+).

use std::process::Command;

use nixery_e2e::harness::clients::{skopeo_copy, Docker, Podman};
use nixery_e2e::harness::{http_get, Containerd, Server, OCI_MANIFEST};

const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Every zstd frame starts with these bytes (RFC 8878).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The manifest of `name`, checked to be OCI with zstd layers only; the layer digests.
fn zstd_layers(server: &Server, name: &str) -> Vec<String> {
    let resp = server.manifest(name, "latest");
    assert_eq!(resp.header("content-type"), OCI_MANIFEST, "{name}");
    let m = resp.json();
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    let layers = m["layers"].as_array().expect("layers");
    assert!(
        layers.len() >= 2,
        "store layers and the customisation layer"
    );
    layers
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], ZSTD_LAYER, "{l}");
            l["digest"].as_str().expect("digest").to_string()
        })
        .collect()
}

#[test]
fn a_zstd_image_is_oci_with_zstd_layers_and_gzip_images_are_unchanged() {
    let server = Server::start_temp();
    let layers = zstd_layers(&server, "zstd/shell/hello");
    for digest in &layers {
        let blob = http_get(
            &server.url(&format!("/v2/zstd/shell/hello/blobs/{digest}")),
            &[],
        );
        assert_eq!(blob.status, 200);
        assert_eq!(blob.body[..4], ZSTD_MAGIC, "layer {digest} is not zstd");
    }
    // The same packages in gzip: other layers (the codec is in the layer key), a Docker
    // manifest for clients that accept both.
    let gzip = server.manifest("shell/hello", "latest");
    assert_eq!(
        gzip.json()["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let gzip_layers = nixery_e2e::harness::manifest_layers(&gzip.body);
    assert!(layers.iter().all(|l| !gzip_layers.contains(l)));
    // skopeo checks every layer's digest as it copies.
    skopeo_copy(&format!("{}/zstd/shell/hello:latest", server.addr), None).ok();
}

#[test]
fn containerd_pulls_and_runs_a_zstd_image() {
    let server = Server::start_temp();
    let ctrd = Containerd::start();
    let image = format!("{}/zstd/shell/hello:latest", server.addr);
    ctrd.pull(&image);
    let out = ctrd.run(&image, "zstd-hello", &["hello"]);
    assert!(out.contains("Hello, world!"), "{out}");
    let bash = ctrd.run(&image, "zstd-bash", &["bash", "-c", "echo from-bash"]);
    assert!(bash.contains("from-bash"), "{bash}");
}

#[test]
fn podman_pulls_and_runs_a_zstd_image() {
    let server = Server::start_temp();
    let podman = Podman::default();
    let image = format!("{}/zstd/shell/hello:latest", server.addr);
    podman.pull(&image).ok();
    let out = podman.run(&image, &["hello"]).ok();
    assert!(out.contains("Hello, world!"), "{out}");
}

/// The Docker Engine's major version, if an engine answers.
fn docker_engine_major() -> Option<u32> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    version.trim().split('.').next()?.parse().ok()
}

/// Docker unpacks zstd layers from Engine 23 on; older engines refuse them, which the
/// README says. Here the test checks whichever of the two this machine's engine does.
#[test]
fn docker_pulls_a_zstd_image_from_engine_23_on() {
    let Some(major) = docker_engine_major() else {
        panic!("no Docker Engine answers `docker version`");
    };
    let server = Server::start_temp();
    let docker = Docker::default();
    let image = format!("{}/zstd/shell/hello", server.addr);
    if major >= 23 {
        docker.pull(&image).ok();
        let out = docker.run(&image, &["hello"]).ok();
        assert!(out.contains("Hello, world!"), "{out}");
    } else {
        let pulled = docker.pull(&image);
        let ran = pulled.success && docker.run(&image, &["hello"]).success;
        assert!(
            !ran,
            "Docker Engine {major} ran a zstd image:\n{}",
            pulled.text
        );
    }
}
