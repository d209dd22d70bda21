//! Real clients against `nixery serve`: containerd pulls and runs images, skopeo copies one,
//! umoci unpacks it.

use std::collections::BTreeSet;

use nixery_e2e::harness::{
    duplicates, manifest_layers, packed_layer_digests, run_tool, tail, Containerd, Server,
};

fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected output containing {needle:?}, got:\n{haystack}"
    );
}

#[test]
fn containerd_pulls_and_runs_shell_git_htop() {
    let server = Server::start_temp();
    let ctrd = Containerd::start();
    let image = format!("{}/shell/git/htop:latest", server.addr);

    ctrd.pull(&image);

    let git = ctrd.run(&image, "git-version", &["git", "--version"]);
    assert_contains(&git, "git version", "`git --version` in shell/git/htop");

    let htop = ctrd.run(&image, "htop-version", &["htop", "--version"]);
    assert_contains(&htop, "htop", "`htop --version` in shell/git/htop");

    let ls = ctrd.run(&image, "ls-root", &["ls", "/"]);
    for dir in ["bin", "nix", "tmp"] {
        assert_contains(&ls, dir, "`ls /` in shell/git/htop");
    }

    // The shell meta-package brings bash; `Cmd` is bash, and bash runs.
    let bash = ctrd.run(&image, "bash-c", &["bash", "-c", "echo from-bash"]);
    assert_contains(&bash, "from-bash", "`bash -c` in shell/git/htop");
}

#[test]
fn second_image_reuses_shared_layers() {
    let server = Server::start_temp();
    let ctrd = Containerd::start();
    let first = format!("{}/shell/git/htop:latest", server.addr);
    let second = format!("{}/shell/curl/hello:latest", server.addr);

    ctrd.pull(&first);
    let first_layers: BTreeSet<String> =
        manifest_layers(&server.manifest("shell/git/htop", "latest").body)
            .into_iter()
            .collect();
    let packed_before = packed_layer_digests(&server.log()).len();
    assert!(
        packed_before > 0,
        "no `layer packed` lines with a digest after the first pull; log:\n{}",
        tail(&server.log(), 60)
    );

    ctrd.pull(&second);
    let hello = ctrd.run(&second, "hello", &["hello"]);
    assert_contains(&hello, "Hello, world!", "`hello` in shell/curl/hello");

    let second_layers: BTreeSet<String> =
        manifest_layers(&server.manifest("shell/curl/hello", "latest").body)
            .into_iter()
            .collect();
    let log = server.log();
    let packed = packed_layer_digests(&log);

    let dup = duplicates(&packed);
    assert!(
        dup.is_empty(),
        "layers packed more than once: {dup:?}\nlog:\n{}",
        tail(&log, 80)
    );

    let shared: BTreeSet<&String> = first_layers.intersection(&second_layers).collect();
    assert!(
        !shared.is_empty(),
        "shell/git/htop and shell/curl/hello share no layer (both contain bash, coreutils, \
         zlib, openssl, cacert...)\nfirst: {first_layers:?}\nsecond: {second_layers:?}"
    );
    let repacked: Vec<&String> = packed[packed_before..]
        .iter()
        .filter(|d| shared.contains(d))
        .collect();
    assert!(
        repacked.is_empty(),
        "layers shared with the first image were packed again during the second pull: \
         {repacked:?}\nlog:\n{}",
        tail(&log, 80)
    );
    // Every layer of the second image that is not shared was packed during the second pull.
    let packed_second: BTreeSet<&String> = packed[packed_before..].iter().collect();
    for layer in second_layers.difference(&first_layers) {
        assert!(
            packed_second.contains(layer),
            "layer {layer} of shell/curl/hello is new but no `layer packed` line names it"
        );
    }
}

#[test]
fn skopeo_copies_and_umoci_unpacks_hello() {
    let server = Server::start_temp();
    let work = tempfile::tempdir().expect("temp dir");
    let layout = work.path().join("oci");
    let bundle = work.path().join("bundle");
    let policy = work.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("write policy");

    let src = format!("docker://{}/hello:latest", server.addr);
    let dst = format!("oci:{}:latest", layout.display());
    run_tool(
        "skopeo",
        &[
            "--policy",
            policy.to_str().expect("UTF-8"),
            "copy",
            "--src-tls-verify=false",
            &src,
            &dst,
        ],
    );

    let image = format!("{}:latest", layout.display());
    run_tool(
        "umoci",
        &["unpack", "--image", &image, bundle.to_str().expect("UTF-8")],
    );
    let hello = bundle.join("rootfs/bin/hello");
    assert!(
        hello.symlink_metadata().is_ok(),
        "{} missing after umoci unpack; rootfs/bin has: {:?}",
        hello.display(),
        std::fs::read_dir(bundle.join("rootfs/bin")).map(|d| d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect::<Vec<_>>())
    );
    // The symlink resolves inside the rootfs: its store path was unpacked too.
    let target = std::fs::read_link(&hello).ok();
    if let Some(target) = target.filter(|t| t.is_absolute()) {
        let inside = bundle
            .join("rootfs")
            .join(target.strip_prefix("/").expect("absolute"));
        assert!(
            inside.exists(),
            "/bin/hello points at {} which is not in the unpacked rootfs",
            target.display()
        );
    }
}
