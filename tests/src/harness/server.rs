//! `nixery serve` as a child process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use tempfile::TempDir;

use super::modern_nix::ModernNix;
use super::process::ChildGuard;
use super::{http_get, nixery_command_via, pkgs_path, tail, Resp, ACCEPT_ALL};

/// Set (to anything) to run every `nixery serve` of the tests with the modern Nix.
pub const MODERN_NIX_VAR: &str = "NIXERY_E2E_MODERN_NIX";

/// How long the server may take to print its listen address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `nixery serve` on 127.0.0.1, stopped on drop.
///
/// The storage directory is owned by the caller (or by [`Server::start_temp`]), so a server can be
/// stopped and started again on the same storage with [`Server::restart`].
pub struct Server {
    process: Option<ChildGuard>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The storage directory.
    pub storage: PathBuf,
    extra_args: Vec<String>,
    /// A command prefix the server runs under (e.g. a private mount namespace); empty: none.
    wrapper: Vec<std::ffi::OsString>,
    logs: TempDir,
    generation: usize,
    _owned_storage: Option<TempDir>,
    _modern_nix: Option<ModernNix>,
}

impl Server {
    /// Start a server on a fresh temporary storage directory (removed on drop).
    pub fn start_temp() -> Server {
        Self::start_temp_with(&[])
    }

    /// Like [`Server::start_temp`], with extra `nixery serve` arguments.
    pub fn start_temp_with(args: &[&str]) -> Server {
        let storage = tempfile::Builder::new()
            .prefix("nixery-storage")
            .tempdir()
            .expect("temp storage dir");
        let mut server = Server::start_with(storage.path(), args);
        server._owned_storage = Some(storage);
        server
    }

    /// Like [`Server::start_temp_with`], with `nixery` run under `wrapper` (a program and its
    /// arguments, e.g. [`super::modern_nix::ModernNix::wrapper`]).
    pub fn start_temp_via(wrapper: Vec<std::ffi::OsString>, args: &[&str]) -> Server {
        let storage = tempfile::Builder::new()
            .prefix("nixery-storage")
            .tempdir()
            .expect("temp storage dir");
        let mut server = Server::new(storage.path(), args, wrapper);
        server._owned_storage = Some(storage);
        server
    }

    /// Start a server on `storage`; its output goes to a fresh log file.
    pub fn start(storage: &Path) -> Server {
        Self::start_with(storage, &[])
    }

    pub fn start_with(storage: &Path, args: &[&str]) -> Server {
        Server::new(storage, args, Vec::new())
    }

    /// With `NIXERY_E2E_MODERN_NIX` set, a server that has no wrapper of its own runs with
    /// the modern Nix on its own store ([`ModernNix`]): the local suite with Nix >= 2.18.
    fn new(storage: &Path, args: &[&str], mut wrapper: Vec<std::ffi::OsString>) -> Server {
        let mut extra_args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let modern = std::env::var_os(MODERN_NIX_VAR).is_some() && wrapper.is_empty();
        let modern_nix = modern.then(ModernNix::new);
        if let Some(nix) = &modern_nix {
            wrapper = nix.wrapper();
            let bin_dir = nix.bin_dir.display().to_string();
            extra_args.extend(["--nix-bin-dir".to_string(), bin_dir]);
        }
        let logs = tempfile::Builder::new()
            .prefix("nixery-log")
            .tempdir()
            .expect("temp log dir");
        let mut server = Server {
            process: None,
            addr: String::new(),
            storage: storage.to_path_buf(),
            extra_args,
            wrapper,
            logs,
            generation: 0,
            _owned_storage: None,
            _modern_nix: modern_nix,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = self
            .logs
            .path()
            .join(format!("serve-{}.log", self.generation));
        let mut cmd = nixery_command_via(&self.wrapper);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--storage"])
            .arg(&self.storage);
        // The offline package set, unless the test names another source.
        let own_source = self
            .extra_args
            .iter()
            .any(|a| a == "--pkgs-repo" || a == "--channel" || a == "--pkgs-path");
        if !own_source {
            cmd.arg("--pkgs-path").arg(pkgs_path());
        }
        cmd.args(&self.extra_args).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let mut process = ChildGuard::spawn(cmd, &log, "nixery serve");
        let re = Regex::new(r"listening on 127\.0\.0\.1:(\d+)").expect("regex");
        let port = process.wait_log(START_TIMEOUT, |log| {
            re.captures(log).map(|c| c[1].to_string())
        });
        self.addr = format!("127.0.0.1:{port}");
        self.process = Some(process);
    }

    /// Stop the server and wait for it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Stop the server (if running) and start a new one on the same storage. The new server
    /// writes a fresh log file, so [`Server::log`] shows only its own lines. The port may change.
    pub fn restart(&mut self) {
        self.stop();
        self.generation += 1;
        self.spawn();
    }

    /// The current server's log so far (ANSI stripped).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(ChildGuard::log)
            .unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET the manifest of `name:reference` accepting Docker and OCI; panics unless 200.
    pub fn manifest(&self, name: &str, reference: &str) -> Resp {
        let resp = http_get(
            &self.url(&format!("/v2/{name}/manifests/{reference}")),
            &[("Accept", ACCEPT_ALL)],
        );
        assert_eq!(
            resp.status,
            200,
            "GET manifest {name}:{reference} failed: {}\nserver log:\n{}",
            resp.text(),
            tail(&self.log(), 60)
        );
        resp
    }
}
