//! A private containerd and `ctr`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{output_within, read_log, tail, CLI_TIMEOUT};

/// A private containerd (own root, state, socket), killed on drop.
pub struct Containerd {
    child: Option<Child>,
    /// The gRPC socket.
    pub socket: PathBuf,
    /// The snapshotter `ctr` commands use (overlayfs if available, else native).
    pub snapshotter: String,
    log_path: PathBuf,
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
        let log_path = dir.path().join("containerd.log");
        let log = std::fs::File::create(&log_path).expect("containerd log");
        let child = Command::new("containerd")
            .arg("-c")
            .arg(&config)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log fd")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("failed to spawn containerd (is it installed? run tests/run.sh)");
        let mut c = Containerd {
            child: Some(child),
            socket,
            snapshotter: "native".into(),
            log_path,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
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
            if let Some(child) = c.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("containerd exited with {status}:\n{}", c.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "containerd socket not ready within 30 s:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// containerd's own log.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
