//! `nixery serve` as a child process.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use regex::Regex;
use tempfile::TempDir;

use super::{
    http_get, nixery_command, pkgs_path, read_log, strip_ansi, tail, Resp, ACCEPT_ALL,
    SERVER_START_TIMEOUT,
};

/// A running `nixery serve` on 127.0.0.1, killed on drop.
///
/// The storage directory is owned by the caller (or by [`Server::start_temp`]), so a server can be
/// stopped and started again on the same storage with [`Server::restart`].
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The storage directory.
    pub storage: PathBuf,
    log_path: PathBuf,
    logs: TempDir,
    generation: usize,
    _owned_storage: Option<TempDir>,
}

impl Server {
    /// Start a server on a fresh temporary storage directory (removed on drop).
    pub fn start_temp() -> Server {
        let storage = tempfile::Builder::new()
            .prefix("nixery-storage")
            .tempdir()
            .expect("temp storage dir");
        let mut server = Server::start(storage.path());
        server._owned_storage = Some(storage);
        server
    }

    /// Start a server on `storage`; its stderr (tracing logs) goes to a fresh log file.
    pub fn start(storage: &Path) -> Server {
        let logs = tempfile::Builder::new()
            .prefix("nixery-log")
            .tempdir()
            .expect("temp log dir");
        let (child, addr, log_path) = spawn_server(storage, logs.path(), 0);
        Server {
            child: Some(child),
            addr,
            storage: storage.to_path_buf(),
            log_path,
            logs,
            generation: 0,
            _owned_storage: None,
        }
    }

    /// Kill the server and wait for it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server (if running) and start a new one on the same storage. The new server
    /// writes a fresh log file, so [`Server::log`] shows only its own lines. The port may change.
    pub fn restart(&mut self) {
        self.stop();
        self.generation += 1;
        let (child, addr, log_path) =
            spawn_server(&self.storage, self.logs.path(), self.generation);
        self.child = Some(child);
        self.addr = addr;
        self.log_path = log_path;
    }

    /// The current server's log so far (stderr, ANSI stripped).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
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

/// Spawn `nixery serve` and wait (bounded) for it to print `127.0.0.1:PORT` on stdout.
fn spawn_server(storage: &Path, logs: &Path, generation: usize) -> (Child, String, PathBuf) {
    let log_path = logs.join(format!("serve-{generation}.log"));
    let stdout_path = logs.join(format!("serve-{generation}.stdout"));
    let log_file = std::fs::File::create(&log_path).expect("create server log");
    let mut child = nixery_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--storage"])
        .arg(storage)
        .arg("--pkgs-path")
        .arg(pkgs_path())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("failed to spawn `nixery serve`");

    // Read stdout on a thread: forward lines until the address shows up, keep draining after
    // (into a file) so the server never blocks on a full pipe.
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut copy = std::fs::File::create(stdout_path).ok();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(f) = copy.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            let _ = tx.send(line);
        }
    });

    let re = Regex::new(r"127\.0\.0\.1:(\d+)").expect("regex");
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    let mut seen = String::new();
    let fail = |child: &mut Child, why: String, seen: &str| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`nixery serve` {why}\nstdout:\n{seen}\nlog:\n{}",
            read_log(&log_path)
        );
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let line = strip_ansi(&line);
                if let Some(c) = re.captures(&line) {
                    let addr = format!("127.0.0.1:{}", &c[1]);
                    return (child, addr, log_path);
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed: the process has exited or is exiting.
                std::thread::sleep(Duration::from_millis(200));
                let status = child.try_wait().ok().flatten();
                fail(
                    &mut child,
                    format!("closed stdout (exit {status:?}) before printing its address"),
                    &seen,
                );
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            fail(
                &mut child,
                format!("exited with {status} before printing its address"),
                &seen,
            );
        }
        if Instant::now() > deadline {
            fail(
                &mut child,
                format!("did not print `127.0.0.1:PORT` within {SERVER_START_TIMEOUT:?}"),
                &seen,
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
