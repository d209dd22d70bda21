//! Shared helpers for the end-to-end tests: the `nixery` binary, a running `nixery serve`,
//! a private containerd, S3/DynamoDB-compatible servers, the Lambda emulator, a binary cache,
//! blocking HTTP, and server-log parsing by the core's event names.
//!
//! Every server binds a free loopback port, every wait is bounded, and every child process
//! runs under [`process::ChildGuard`], which stops it when dropped.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nixery_core::events;
use regex::Regex;
use sha2::{Digest, Sha256};

pub mod aws;
pub mod binary_cache;
pub mod channel;
pub mod clients;
mod containerd;
mod http;
pub mod lambda;
pub mod lambda_container;
pub mod modern_nix;
pub mod process;
pub mod proxy;
mod server;

pub use containerd::Containerd;
pub use http::*;
pub use server::Server;

/// The Nix configuration the tests run under: Debian's nix-bin as root, no sandbox, offline.
pub const NIX_CONFIG: &str =
    "sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command";

/// How long one HTTP request may take (a request may trigger a Nix build).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(900);

/// How long one CLI call (nixery build, ctr pull, skopeo copy...) may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(900);

/// The Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An Accept header listing what a Docker-era client accepts.
pub const ACCEPT_ALL: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// The Cargo workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent directory")
        .to_path_buf()
}

/// The `nixery` binary: `$NIXERY_BIN`, else `<workspace>/target/debug/nixery`.
pub fn nixery_bin() -> PathBuf {
    let path = match std::env::var_os("NIXERY_BIN") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("target/debug/nixery"),
    };
    assert!(
        path.is_file(),
        "nixery binary not found at {}: build it with `cargo build --workspace` or set NIXERY_BIN",
        path.display()
    );
    path
}

/// Cargo's target directory, where tests/run.sh also puts the tools it fetches: the parent
/// of the `nixery` binary's profile directory, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    nixery_bin()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The offline package set, `<workspace>/nix/pkgs`.
pub fn pkgs_path() -> PathBuf {
    let path = workspace_root().join("nix/pkgs");
    assert!(
        path.exists(),
        "offline package set not found at {}",
        path.display()
    );
    path
}

/// NIX_CONFIG from the environment, or [`NIX_CONFIG`].
pub fn nix_config() -> String {
    std::env::var("NIX_CONFIG").unwrap_or_else(|_| NIX_CONFIG.to_string())
}

/// A `Command` for the nixery binary with NIX_CONFIG set and colours off.
pub fn nixery_command() -> Command {
    let mut cmd = Command::new(nixery_bin());
    cmd.env("NIX_CONFIG", nix_config())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Like [`nixery_command`], run through `prefix` (a program and its arguments) if any.
pub fn nixery_command_via(prefix: &[std::ffi::OsString]) -> Command {
    let Some((program, args)) = prefix.split_first() else {
        return nixery_command();
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg(nixery_bin())
        .env("NIX_CONFIG", nix_config())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Run `nixery ARGS...` to completion and return its output (whatever the exit status).
pub fn nixery(args: &[&str]) -> Output {
    output_within(nixery_command().args(args), CLI_TIMEOUT)
}

/// Run `nixery ARGS...`, panic with its stderr unless it succeeds, return its stdout.
pub fn nixery_ok(args: &[&str]) -> String {
    let out = nixery(args);
    assert!(
        out.status.success(),
        "`nixery {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nixery stdout is UTF-8")
}

/// `nixery build IMAGE --storage DIR --pkgs-path <pkgs>`: the manifest digest (last stdout line).
pub fn nixery_build(image: &str, storage: &Path) -> String {
    let storage = storage.to_str().expect("UTF-8 storage path");
    let pkgs = pkgs_path();
    let pkgs = pkgs.to_str().expect("UTF-8 pkgs path");
    let stdout = nixery_ok(&["build", image, "--storage", storage, "--pkgs-path", pkgs]);
    let last = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string();
    assert!(
        is_digest(&last),
        "`nixery build {image}` did not print a sha256 digest as its last line:\n{stdout}"
    );
    last
}

// ---------------------------------------------------------------------------------------------
// Digests and logs
// ---------------------------------------------------------------------------------------------

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Whether `s` is exactly `sha256:` and 64 lowercase hex digits.
pub fn is_digest(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new("^sha256:[0-9a-f]{64}$").expect("regex"))
        .is_match(s)
}

/// Remove ANSI colour sequences (tracing's fmt layer may colour field names).
pub fn strip_ansi(s: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new("\x1b\\[[0-9;]*[A-Za-z]").expect("regex"))
        .replace_all(s, "")
        .into_owned()
}

/// Digests from the log lines of packed layers, in order (duplicates kept).
pub fn packed_layer_digests(log: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r#"digest=?"?(sha256:[0-9a-f]{64})"#).expect("regex"));
    log.lines()
        .filter(|l| l.contains(events::LAYER_PACKED))
        .filter_map(|l| re.captures(l).map(|c| c[1].to_string()))
        .collect()
}

/// Manifest digests from the log lines of built images, in order.
pub fn built_manifests(log: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r#"manifest=?"?(sha256:[0-9a-f]{64})"#).expect("regex"));
    log.lines()
        .filter(|l| l.contains(events::IMAGE_BUILT))
        .filter_map(|l| re.captures(l).map(|c| c[1].to_string()))
        .collect()
}

/// Number of log lines containing `needle`.
pub fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Number of Nix processes the server spawned.
pub fn nix_calls(log: &str) -> usize {
    count_lines(log, events::NIX_CALL)
}

/// Number of image builds.
pub fn images_built(log: &str) -> usize {
    count_lines(log, events::IMAGE_BUILT)
}

/// Digests that occur more than once in `digests`.
pub fn duplicates(digests: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for d in digests {
        if !seen.insert(d) {
            dup.insert(d.clone());
        }
    }
    dup.into_iter().collect()
}

/// Read a log file, ANSI stripped; empty if it does not exist.
pub fn read_log(path: &Path) -> String {
    strip_ansi(&String::from_utf8_lossy(
        &std::fs::read(path).unwrap_or_default(),
    ))
}

/// The layer digests of a manifest body.
pub fn manifest_layers(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("manifest is JSON");
    v["layers"]
        .as_array()
        .expect("manifest has a layers array")
        .iter()
        .map(|l| {
            l["digest"]
                .as_str()
                .expect("layer has a digest")
                .to_string()
        })
        .collect()
}

/// `cargo` (the one running these tests), run from the workspace root without the variables
/// Cargo sets for this test crate (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, ...). Cargo compares a build
/// script's `rerun-if-env-changed` variables with its own environment, and ring's build script
/// watches those: left in, a test's `cargo build` rebuilds ring and everything above it instead
/// of finding what tests/run.sh built.
pub fn cargo_command() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_crate = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_BIN_EXE_")
            || matches!(
                key.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            );
        if set_for_crate {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// Run a command to completion with a time bound; on timeout kill it and panic with what it
/// printed so far.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("failed to run {what} (run tests/run.sh to install tools): {e}")
        });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_thread.join().unwrap_or_default();
                let stderr = err_thread.join().unwrap_or_default();
                panic!(
                    "{what} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Run an external tool, panicking with its output unless it succeeds; returns stdout.
pub fn run_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("failed to run {program} (run tests/run.sh to install it): {e}")
        });
    assert!(
        out.status.success(),
        "`{program} {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
