//! The one guard for child processes the tests start: output to a log file, a process group
//! of its own, bounded waits for a port, and TERM then KILL of the whole group on drop.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{read_log, tail};

/// How long a stopped process group gets to exit after TERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often a wait for a port or a log line looks again.
pub const POLL: Duration = Duration::from_millis(100);

/// A running child process (and its process group), stopped on drop.
pub struct ChildGuard {
    child: Option<Child>,
    log: PathBuf,
    what: String,
}

impl ChildGuard {
    /// Start `cmd` with stdin closed and stdout and stderr appended to `log`, in a process
    /// group of its own so that everything it starts is stopped with it. `what` names it in
    /// panics, with a hint of how to install it.
    pub fn spawn(mut cmd: Command, log: &Path, what: &str) -> ChildGuard {
        let file = std::fs::File::create(log).expect("create log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("clone log fd")))
            .stderr(Stdio::from(file))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        ChildGuard {
            child: Some(child),
            log: log.to_path_buf(),
            what: what.to_string(),
        }
    }

    /// The log so far (ANSI colours stripped).
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panic with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited with {status}:\n{}",
                self.what,
                tail(&self.log(), 80)
            );
        }
    }

    /// Wait (bounded) until something accepts connections on 127.0.0.1:`port`.
    pub fn wait_port(&mut self, port: u16, limit: Duration) {
        let deadline = Instant::now() + limit;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {port} within {limit:?}:\n{}",
                self.what,
                tail(&self.log(), 80)
            );
            std::thread::sleep(POLL);
        }
    }

    /// Wait (bounded) until `find` returns something from the log.
    pub fn wait_log<T>(&mut self, limit: Duration, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = find(&self.log()) {
                return found;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} did not log what was expected within {limit:?}:\n{}",
                self.what,
                tail(&self.log(), 80)
            );
            std::thread::sleep(POLL);
        }
    }

    /// Stop the whole process group: TERM, a grace period, then KILL. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(POLL);
        }
        signal("-KILL");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
