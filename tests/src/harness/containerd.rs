//! A private containerd and `ctr`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{ChildGuard, POLL};
use super::{output_within, tail, CLI_TIMEOUT};

/// How long containerd may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A private containerd (own root, state, socket), stopped on drop.
pub struct Containerd {
    process: Option<ChildGuard>,
    /// The gRPC socket.
    pub socket: PathBuf,
    /// The snapshotter `ctr` commands use (overlayfs if available, else native).
    pub snapshotter: String,
    dir: TempDir,
}

impl Containerd {
    /// Start containerd in a temp dir and wait (bounded) until its socket answers.
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("nixery-containerd")
            .tempdir()
            .expect("containerd temp dir");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )
        .expect("write containerd config");
        let socket = dir.path().join("containerd.sock");
        let mut cmd = Command::new("containerd");
        cmd.arg("-c")
            .arg(&config)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(&socket);
        let log = dir.path().join("containerd.log");
        let process = ChildGuard::spawn(cmd, &log, "containerd (apt-get install containerd)");
        let mut c = Containerd {
            process: Some(process),
            socket,
            snapshotter: "native".into(),
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if c.socket.exists() {
                let out = c.ctr_output(&["plugins", "ls"]);
                if out.status.success() {
                    let plugins = String::from_utf8_lossy(&out.stdout).into_owned();
                    let overlay_ok = plugins.lines().any(|l| {
                        l.contains("io.containerd.snapshotter.v1")
                            && l.contains("overlayfs")
                            && l.trim_end().ends_with("ok")
                    });
                    if overlay_ok {
                        c.snapshotter = "overlayfs".into();
                    }
                    return c;
                }
            }
            if let Some(p) = c.process.as_mut() {
                p.assert_running();
            }
            assert!(
                Instant::now() < deadline,
                "containerd socket not ready within {START_TIMEOUT:?}:\n{}",
                c.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// containerd's own log.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(ChildGuard::log)
            .unwrap_or_default()
    }

    /// A scratch directory that lives as long as this containerd.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Like `ctr_output` but never panics: a failure or timeout is an unsuccessful Output.
    fn ctr_output_within(&self, args: &[&str], limit: Duration) -> Output {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            output_within(
                Command::new("ctr")
                    .arg("--address")
                    .arg(&self.socket)
                    .args(args),
                limit,
            )
        }));
        run.unwrap_or_else(|_| Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
            stdout: vec![],
            stderr: vec![],
        })
    }

    /// `ctr ARGS...` whatever its outcome (for pulls expected to fail).
    pub fn try_ctr(&self, args: &[&str]) -> Output {
        self.ctr_output(args)
    }

    fn ctr_output(&self, args: &[&str]) -> Output {
        output_within(
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(args),
            CLI_TIMEOUT,
        )
    }

    /// `ctr --address SOCK ARGS...`: stdout; panics with stderr and containerd's log on failure.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = self.ctr_output(args);
        assert!(
            out.status.success(),
            "`ctr {}` failed with {}\nstdout:\n{}\nstderr:\n{}\ncontainerd log (tail):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr images pull --plain-http` with the chosen snapshotter.
    pub fn pull(&self, reference: &str) -> String {
        self.ctr(&[
            "images",
            "pull",
            "--plain-http",
            "--snapshotter",
            &self.snapshotter,
            reference,
        ])
    }

    /// `ctr images pull --plain-http [--user USER:KEY]`, which may fail.
    pub fn try_pull(&self, reference: &str, user: Option<&str>) -> Output {
        let mut args = vec![
            "images",
            "pull",
            "--plain-http",
            "--snapshotter",
            &self.snapshotter,
        ];
        if let Some(user) = user {
            args.extend(["--user", user]);
        }
        args.push(reference);
        self.try_ctr(&args)
    }

    /// `ctr run --rm IMAGE ID CMD...`: the command's stdout.
    pub fn run(&self, image: &str, id: &str, cmd: &[&str]) -> String {
        let mut args = vec!["run", "--rm", "--snapshotter", &self.snapshotter, image, id];
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Kill tasks a failed test left running, so their shims exit with containerd.
        let tasks = self.ctr_output_within(&["tasks", "ls", "-q"], Duration::from_secs(10));
        for id in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
            self.ctr_output_within(
                &["tasks", "kill", "-s", "SIGKILL", id],
                Duration::from_secs(10),
            );
        }
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}
