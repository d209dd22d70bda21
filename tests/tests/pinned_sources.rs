//! Moving package sources are pinned: a git branch to its head commit, a channel to its
//! current release. Images are cached under the pin, so a second pull builds nothing, and a
//! new commit makes a new image. Within the pin TTL the source is not even looked up.

use std::path::Path;
use std::process::Command;

use nixery_e2e::harness::channel::{pkgs_copy, ChannelServer};
use nixery_e2e::harness::{images_built, output_within, packed_layer_digests, Server, CLI_TIMEOUT};

const HELLO: &str = "Hello, world!";
const HELLO_2: &str = "Hello, pinned world!";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = output_within(
        Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=test", "-c", "user.email=test@example.org"])
            .args(args),
        CLI_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn digest(server: &Server, name: &str, tag: &str) -> String {
    server.manifest(name, tag).header("docker-content-digest")
}

#[test]
fn a_git_branch_is_pinned_to_its_head_and_a_new_commit_makes_a_new_image() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = pkgs_copy(tmp.path(), |t| t);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "default.nix"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let first_commit = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());
    let server = Server::start_temp_with(&["--pkgs-repo", &url, "--pin-ttl", "0"]);

    let first = digest(&server, "hello", "main");
    assert_eq!(images_built(&server.log()), 1);
    let packed = packed_layer_digests(&server.log()).len();
    assert_eq!(
        digest(&server, "hello", "main"),
        first,
        "same head, same image"
    );
    assert_eq!(
        images_built(&server.log()),
        1,
        "the second pull builds nothing"
    );
    assert_eq!(packed_layer_digests(&server.log()).len(), packed);

    let text = std::fs::read_to_string(repo.join("default.nix")).expect("read");
    std::fs::write(repo.join("default.nix"), text.replace(HELLO, HELLO_2)).expect("edit");
    git(&repo, &["commit", "-q", "-am", "second"]);
    let second = digest(&server, "hello", "main");
    assert_ne!(
        second, first,
        "a new commit on the branch makes a new image"
    );
    assert_eq!(images_built(&server.log()), 2);

    // The first commit, asked for by its hash, is the image already built from it.
    assert_eq!(digest(&server, "hello", &first_commit), first);
    assert_eq!(images_built(&server.log()), 2, "{}", server.log());
}

#[test]
fn a_channel_is_pinned_to_its_release_and_a_new_release_makes_a_new_image() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let channel = ChannelServer::start();
    channel.publish(
        "r1",
        &"1".repeat(40),
        &pkgs_copy(&tmp.path().join("r1"), |t| t),
    );
    let server = Server::start_temp_with(&["--channel", &channel.url, "--pin-ttl", "0"]);

    let first = digest(&server, "hello", "latest");
    assert_eq!(images_built(&server.log()), 1);
    assert_eq!(
        digest(&server, "hello", "any-tag"),
        first,
        "channels ignore the tag"
    );
    assert_eq!(
        images_built(&server.log()),
        1,
        "the second pull builds nothing"
    );
    assert!(channel.lookups() >= 2, "pin TTL 0: looked up on every pull");

    let edited = pkgs_copy(&tmp.path().join("r2"), |t| t.replace(HELLO, HELLO_2));
    channel.publish("r2", &"2".repeat(40), &edited);
    let second = digest(&server, "hello", "latest");
    assert_ne!(second, first, "a new release makes a new image");
    assert_eq!(images_built(&server.log()), 2);
}

#[test]
fn within_the_pin_ttl_a_moving_source_is_not_looked_up_again() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let channel = ChannelServer::start();
    channel.publish(
        "r1",
        &"1".repeat(40),
        &pkgs_copy(&tmp.path().join("r1"), |t| t),
    );
    let server = Server::start_temp_with(&["--channel", &channel.url, "--pin-ttl", "3600"]);
    let first = digest(&server, "hello", "latest");
    let lookups = channel.lookups();
    let edited = pkgs_copy(&tmp.path().join("r2"), |t| t.replace(HELLO, HELLO_2));
    channel.publish("r2", &"2".repeat(40), &edited);
    assert_eq!(digest(&server, "hello", "latest"), first, "still pinned");
    assert_eq!(channel.lookups(), lookups, "no lookup within the pin TTL");
}
