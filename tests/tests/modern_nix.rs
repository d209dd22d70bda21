//! The local path with a Nix >= 2.18 (Debian 13's, `harness::modern_nix`) on its own store:
//! `nixery serve --nix-bin-dir` resolves, realises and reads the closure (which that Nix
//! prints in the newer `nix path-info --json` object form), and a client pulls and runs the
//! image. And the start-up check: a nixpkgs source with a Nix older than 2.18 is refused
//! with a message saying what to do.

use nixery_e2e::harness::modern_nix::ModernNix;
use nixery_e2e::harness::{
    manifest_layers, nixery, pkgs_path, tail, Containerd, Server, ACCEPT_ALL,
};

/// A directory that looks like nixpkgs to the start-up check (it has `lib/minver.nix`).
fn nixpkgs_like() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let nix = std::fs::read_to_string(pkgs_path().join("default.nix")).expect("pkgs");
    std::fs::write(dir.path().join("default.nix"), nix).expect("write");
    std::fs::create_dir(dir.path().join("lib")).expect("mkdir");
    std::fs::write(dir.path().join("lib/minver.nix"), "\"2.18\"\n").expect("write");
    dir
}

fn serve_args<'a>(bin_dir: &'a str, source: &'a [&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--nix-bin-dir", bin_dir];
    args.extend(source);
    args
}

#[test]
fn serve_builds_and_containerd_runs_with_a_modern_nix_on_its_own_store() {
    let nix = ModernNix::new();
    let version = nix.run("nix-instantiate", &["--version"]);
    eprintln!("modern Nix: {}", version.trim());
    let bin_dir = nix.bin_dir.to_str().expect("UTF-8");
    let server = Server::start_temp_via(nix.wrapper(), &serve_args(bin_dir, &[]));

    let manifest = server.manifest("shell/hello", "latest");
    assert!(manifest_layers(&manifest.body).len() > 1, "layers");
    let log = server.log();
    for program in ["nix-instantiate", "nix-build"] {
        assert!(log.contains(program), "{program} ran:\n{}", tail(&log, 40));
    }
    // The realised paths are in this Nix's store, not the machine's.
    let store = std::fs::read_dir(nix.root().join("store")).expect("modern store");
    let names: Vec<String> = store
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let hello = names.iter().find(|n| n.ends_with("-hello-2.12.1"));
    let hello = format!("/nix/store/{}", hello.expect("hello in the modern store"));
    // What the closure step parsed: this Nix prints path-info as an object keyed by path.
    let info = nix.run("nix", &["path-info", "--json", "--recursive", &hello]);
    let info: serde_json::Value = serde_json::from_str(&info).expect("path-info JSON");
    assert!(info.get(&hello).is_some(), "object form: {info}");

    let unknown = nixery_e2e::harness::http_get(
        &server.url("/v2/hello/nosuchpackage/manifests/latest"),
        &[("Accept", ACCEPT_ALL)],
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(
        unknown.json()["errors"][0]["detail"]["missing"][0],
        "nosuchpackage"
    );

    let ctrd = Containerd::start();
    let image = format!("{}/shell/hello:latest", server.addr);
    ctrd.pull(&image);
    let out = ctrd.run(&image, "modern-nix-hello", &["hello"]);
    assert!(out.contains("Hello, world!"), "{out}");
}

#[test]
fn nixpkgs_with_an_old_nix_is_refused_at_start_and_a_modern_one_is_accepted() {
    let storage = tempfile::tempdir().expect("storage");
    let storage = storage.path().to_str().expect("UTF-8");
    let pkgs = nixpkgs_like();
    let pkgs = pkgs.path().to_str().expect("UTF-8");
    // The machine's Nix (Debian 12: 2.8) from PATH.
    for source in [
        ["--pkgs-path", pkgs],
        ["--channel", "nixos-unstable"],
        ["--pkgs-repo", "https://github.com/NixOS/nixpkgs"],
    ] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--storage", storage];
        args.extend(source);
        let out = nixery(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{source:?} must be refused: {stderr}"
        );
        assert!(
            stderr.contains("needs Nix >= 2.18.0") && stderr.contains("--nix-bin-dir"),
            "{source:?}: the message says why and what to do: {stderr}"
        );
    }
    // The same nixpkgs-like path with the modern Nix starts.
    let nix = ModernNix::new();
    let bin_dir = nix.bin_dir.to_str().expect("UTF-8");
    let server =
        Server::start_temp_via(nix.wrapper(), &serve_args(bin_dir, &["--pkgs-path", pkgs]));
    assert!(server.log().contains("nix version"), "{}", server.log());
}
