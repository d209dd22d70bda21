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
