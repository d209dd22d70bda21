//! S3- and DynamoDB-compatible servers speaking the AWS wire protocol, started
//! on free loopback ports: s3s-fs (checks SigV4 and presigned URLs) and
//! moto_server (enforces DynamoDB condition expressions).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials the test servers accept.
pub const ACCESS_KEY: &str = "nixerytestkey";
pub const SECRET_KEY: &str = "nixerytestsecretkey0123456789";
pub const REGION: &str = "us-east-1";

/// A server process killed on drop, with its log in a temp dir.
pub struct AwsServer {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for AwsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AwsServer {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// s3s-fs serving a temp directory (install: `cargo install s3s-fs --features binary`).
    pub fn s3s_fs() -> AwsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("fs");
        std::fs::create_dir(&root).expect("mkdir");
        let port = free_port();
        let mut cmd = Command::new("s3s-fs");
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root);
        start(
            cmd,
            dir,
            port,
            "s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary)",
        )
    }

    /// moto_server (install: `pip install 'moto[server]'`).
    pub fn moto() -> AwsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        start(cmd, dir, port, "moto_server (pip install 'moto[server]')")
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start(mut cmd: Command, dir: tempfile::TempDir, port: u16, what: &str) -> AwsServer {
    let log = dir.path().join("server.log");
    let file = std::fs::File::create(&log).expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().expect("clone")))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut server = AwsServer {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{what} exited with {status}:\n{}", server.log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within 60 s:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}
