//! The Lambda runtime emulator (`cargo lambda watch`) running one of the
//! workspace's function binaries, and a signed Nix binary cache made with
//! `nix copy` and served over HTTP on loopback.

use super::aws::free_port;
use super::{nix_config, output_within, pkgs_path, workspace_root, CLI_TIMEOUT};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process killed on drop, logging to a file.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn spawn_logged(mut cmd: Command, log: &Path, what: &str) -> Proc {
    let file = std::fs::File::create(log).expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().expect("clone")))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    Proc {
        child,
        log: log.to_path_buf(),
    }
}

fn wait_port(port: u16, proc: &mut Proc, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("{what} exited with {status}:\n{}", proc.log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within {limit:?}:\n{}",
            proc.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `cargo lambda watch` serving the Lambda Invoke API for binary `bin` at
/// `http://127.0.0.1:PORT/2015-03-31/functions/<bin>/invocations`.
pub struct LambdaWatch {
    pub proc: Proc,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl LambdaWatch {
    pub fn start(package: &str, bin: &str, env: &[(String, String)]) -> LambdaWatch {
        let dir = tempfile::tempdir().expect("temp dir");
        let env_file = dir.path().join("env");
        // Single-quoted: dotenv takes such values literally (keys hold '=' and ':').
        let lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
        std::fs::write(&env_file, lines.join("\n") + "\n").expect("env file");
        let port = free_port();
        let mut cmd = Command::new("cargo");
        cmd.current_dir(workspace_root())
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--quiet",
                "-A",
                "127.0.0.1",
            ])
            .args(["-P", &port.to_string(), "-p", package, "--bin", bin])
            .arg("--env-file")
            .arg(&env_file)
            .env("NIX_CONFIG", nix_config());
        let mut proc = spawn_logged(
            cmd,
            &dir.path().join("watch.log"),
            "cargo lambda watch (pip install cargo-lambda)",
        );
        wait_port(
            port,
            &mut proc,
            "cargo lambda watch",
            Duration::from_secs(120),
        );
        LambdaWatch {
            proc,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// Invoke once with a payload the function rejects, so that it is
    /// compiled and running (the emulator builds on the first invocation).
    pub fn warm_up(&self, function: &str) {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        );
        let client = reqwest::blocking::Client::builder()
            .timeout(CLI_TIMEOUT)
            .build()
            .expect("client");
        let resp = client.post(&url).body("{\"warm_up\": true}").send();
        assert!(
            resp.is_ok(),
            "warm-up invocation failed: {resp:?}\n{}",
            self.proc.log()
        );
    }
}

/// A signed binary cache of the closures of some attributes of the offline
/// package set, served by Python's HTTP server.
pub struct BinaryCacheServer {
    pub url: String,
    pub public_key: String,
    pub dir: PathBuf,
    _server: Proc,
    _tmp: tempfile::TempDir,
}

fn nix(program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).env("NIX_CONFIG", nix_config());
    let out = output_within(&mut cmd, CLI_TIMEOUT);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl BinaryCacheServer {
    pub fn start(attrs: &[&str]) -> BinaryCacheServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let pkgs = pkgs_path();
        let mut args = vec![pkgs.to_str().expect("utf-8 path"), "--no-out-link"];
        for a in attrs {
            args.extend(["-A", a]);
        }
        let built = nix("nix-build", &args);
        let paths: Vec<&str> = built.lines().filter(|l| l.starts_with('/')).collect();
        let (sk, pk) = (tmp.path().join("sk"), tmp.path().join("pk"));
        let name = format!("nixery-test-{}", std::process::id());
        nix(
            "nix-store",
            &[
                "--generate-binary-cache-key",
                &name,
                sk.to_str().expect("utf-8"),
                pk.to_str().expect("utf-8"),
            ],
        );
        let mut sign = vec![
            "store",
            "sign",
            "--key-file",
            sk.to_str().expect("utf-8"),
            "--recursive",
        ];
        sign.extend(&paths);
        nix("nix", &sign);
        let dir = tmp.path().join("cache");
        let to = format!("file://{}?compression=xz", dir.display());
        let mut copy = vec!["copy", "--to", &to];
        copy.extend(&paths);
        nix("nix", &copy);
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&dir);
        let mut server = spawn_logged(cmd, &tmp.path().join("http.log"), "python3 -m http.server");
        wait_port(
            port,
            &mut server,
            "binary cache HTTP server",
            Duration::from_secs(30),
        );
        let public_key = std::fs::read_to_string(&pk)
            .expect("public key")
            .trim()
            .to_string();
        BinaryCacheServer {
            url: format!("http://127.0.0.1:{port}"),
            public_key,
            dir,
            _server: server,
            _tmp: tmp,
        }
    }
}
