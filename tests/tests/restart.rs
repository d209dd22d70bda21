//! A restarted server serves what it built before from its storage, without Nix.

use nixery_e2e::harness::{http_head, manifest_layers, nix_calls, tail, Server};

#[test]
fn restart_serves_cached_manifest_without_nix() {
    let mut server = Server::start_temp();
    let before = server.manifest("hello", "latest");
    let digest = before.header("docker-content-digest");
    assert!(
        nix_calls(&server.log()) > 0,
        "the first build logged no `nix call` line; log:\n{}",
        tail(&server.log(), 40)
    );

    server.restart();
    let after = server.manifest("hello", "latest");
    assert_eq!(
        after.header("docker-content-digest"),
        digest,
        "manifest digest changed across a restart"
    );
    assert_eq!(
        after.body, before.body,
        "manifest body changed across a restart"
    );
    for layer in manifest_layers(&after.body) {
        let head = http_head(&server.url(&format!("/v2/hello/blobs/{layer}")), &[]);
        assert_eq!(head.status, 200, "layer {layer} missing after restart");
    }
    let log = server.log();
    assert_eq!(
        nix_calls(&log),
        0,
        "the restarted server called Nix for a cached image; log:\n{}",
        tail(&log, 60)
    );
}
