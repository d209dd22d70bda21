//! A nixpkgs-style channel on loopback, as channels.nixos.org serves one: the channel URL
//! redirects to its current release, which holds `git-revision` (the commit) and
//! `nixexprs.tar.xz` (the package set). Releases are made from copies of the offline
//! package set, so a test can publish a new "commit" and watch the registry follow it.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{output_within, pkgs_path, CLI_TIMEOUT};

/// The channel's name in its URL.
pub const CHANNEL: &str = "nixos-test";

struct Shared {
    releases: std::path::PathBuf,
    current: Mutex<String>,
    lookups: AtomicUsize,
}

/// A running channel server, stopped with its runtime on drop.
pub struct ChannelServer {
    /// The channel URL: `http://127.0.0.1:PORT/nixos-test`.
    pub url: String,
    shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl ChannelServer {
    pub fn start() -> ChannelServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = Arc::new(Shared {
            releases: dir.path().join("releases"),
            current: Mutex::new(String::new()),
            lookups: AtomicUsize::new(0),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let app = Router::new()
            .route(&format!("/{CHANNEL}/{{file}}"), get(redirect))
            .route("/releases/{release}/{file}", get(release_file))
            .with_state(shared.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move { axum::serve(listener, app).await });
        ChannelServer {
            url: format!("http://{addr}/{CHANNEL}"),
            shared,
            _rt: rt,
            _dir: dir,
        }
    }

    /// Make release `name` of the package set in `pkgs` (a directory holding default.nix),
    /// claiming nixpkgs commit `commit`, and point the channel at it.
    pub fn publish(&self, name: &str, commit: &str, pkgs: &Path) {
        let dir = self.shared.releases.join(name);
        std::fs::create_dir_all(&dir).expect("release dir");
        std::fs::write(dir.join("git-revision"), commit).expect("git-revision");
        let tarball = dir.join("nixexprs.tar.xz");
        let parent = pkgs.parent().expect("pkgs has a parent");
        let top = pkgs.file_name().expect("pkgs has a name");
        let out = output_within(
            Command::new("tar")
                .arg("-C")
                .arg(parent)
                .arg("-cJf")
                .arg(&tarball)
                .arg(top),
            CLI_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        *self.shared.current.lock().expect("current") = name.to_string();
    }

    /// How many times the channel was looked up (its `git-revision` asked for).
    pub fn lookups(&self) -> usize {
        self.shared.lookups.load(Ordering::SeqCst)
    }
}

/// A copy of the offline package set in `dest/nixpkgs`, with `edit` applied to its
/// default.nix text; returns the copy's directory.
pub fn pkgs_copy(dest: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let dir = dest.join("nixpkgs");
    std::fs::create_dir_all(&dir).expect("copy dir");
    let text = std::fs::read_to_string(pkgs_path().join("default.nix")).expect("read pkgs");
    std::fs::write(dir.join("default.nix"), edit(text)).expect("write copy");
    dir
}

/// A copy of the offline package set that carries the host files it is made of (busybox,
/// bash-static, the CA bundle) and defaults to them, for a Nix on another root filesystem
/// (the builder image): it evaluates to the same store paths as the host's `nix/pkgs`,
/// since `builtins.path` hashes only the filtered contents and the name.
pub fn portable_pkgs_copy(dest: &Path) -> std::path::PathBuf {
    let dir = pkgs_copy(dest, |text| {
        let edited = text
            .replace("hostBin ? /usr/bin", "hostBin ? ./host-bin")
            .replace("hostCerts ? /etc/ssl/certs", "hostCerts ? ./host-certs");
        assert!(
            edited.contains("./host-bin") && edited.contains("./host-certs"),
            "nix/pkgs/default.nix no longer has the hostBin and hostCerts defaults"
        );
        edited
    });
    let copies = [
        ("/usr/bin/busybox", "host-bin/busybox"),
        ("/usr/bin/bash-static", "host-bin/bash-static"),
        (
            "/etc/ssl/certs/ca-certificates.crt",
            "host-certs/ca-certificates.crt",
        ),
    ];
    for (from, to) in copies {
        let to = dir.join(to);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        // std::fs::copy keeps the mode, which is part of the store path's hash.
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
    }
    dir
}

async fn redirect(State(s): State<Arc<Shared>>, UrlPath(file): UrlPath<String>) -> Response {
    if file == "git-revision" {
        s.lookups.fetch_add(1, Ordering::SeqCst);
    }
    let current = s.current.lock().expect("current").clone();
    let location = format!("/releases/{current}/{file}");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn release_file(
    State(s): State<Arc<Shared>>,
    UrlPath((release, file)): UrlPath<(String, String)>,
) -> Response {
    let safe = |p: &str| !p.is_empty() && !p.contains('/') && !p.starts_with('.');
    if !safe(&release) || !safe(&file) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    match std::fs::read(s.releases.join(release).join(file)) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
