//! Builds are reproducible: same packages, same manifest digest, whatever the storage.

use nixery_e2e::harness::nixery_build;

#[test]
fn build_in_two_empty_storages_gives_one_digest() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let first = nixery_build("hello/git", a.path());
    let second = nixery_build("hello/git", b.path());
    assert_eq!(
        first, second,
        "`nixery build hello/git` gave different digests in two empty storages"
    );
}

#[test]
fn rebuild_in_same_storage_gives_same_digest() {
    let a = tempfile::tempdir().expect("temp dir");
    let first = nixery_build("hello/git", a.path());
    let again = nixery_build("hello/git", a.path());
    assert_eq!(first, again, "rebuilding hello/git changed its digest");
}

#[test]
fn package_order_does_not_change_the_digest() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let sorted = nixery_build("hello/git", a.path());
    let reversed = nixery_build("git/hello", b.path());
    assert_eq!(
        sorted, reversed,
        "hello/git and git/hello name the same packages but got different digests"
    );
}

/// `--binary-cache`: the in-process builder takes store paths from a signed
/// binary cache instead of the local store, and the image is the same.
#[test]
fn binary_cache_build_matches_local_store_build() {
    use nixery_e2e::harness::binary_cache::BinaryCacheServer;
    use nixery_e2e::harness::{is_digest, nixery_ok, pkgs_path};
    let cache = BinaryCacheServer::start(&["hello", "cacert", "iana-etc"]);
    let (a, b) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let local = nixery_build("hello", a.path());
    let pkgs = pkgs_path();
    let args = [
        "build",
        "hello",
        "--storage",
        b.path().to_str().expect("utf-8"),
        "--pkgs-path",
        pkgs.to_str().expect("utf-8"),
        "--binary-cache",
        &cache.url,
        "--trusted-key",
        &cache.public_key,
    ];
    let out = nixery_ok(&args);
    let from_cache = out.lines().last().unwrap_or_default().trim().to_string();
    assert!(is_digest(&from_cache), "no digest printed:\n{out}");
    assert_eq!(
        local, from_cache,
        "an image from the binary cache differs from the local-store build"
    );
}
