//! The other registry clients, each isolated in a temp directory: docker (through the
//! machine's Docker Engine, with its own client config), podman (own root and runroot, vfs
//! storage), skopeo. Each method returns the tool's output whatever its outcome, so tests
//! can check failures too; `Outcome::ok` panics with the output when it should have worked.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{output_within, CLI_TIMEOUT};

/// What a client command printed, and whether it worked.
pub struct Outcome {
    pub success: bool,
    pub text: String,
}

impl Outcome {
    fn from(what: String, out: Output) -> Outcome {
        let text = format!(
            "$ {what}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Outcome {
            success: out.status.success(),
            text,
        }
    }

    /// Panics with the output unless the command worked; its output.
    pub fn ok(self) -> String {
        assert!(self.success, "expected success:\n{}", self.text);
        self.text
    }

    /// Panics unless the command failed with one of `needles` in its output (any case).
    pub fn failed_with(self, needles: &[&str]) {
        let lower = self.text.to_lowercase();
        assert!(
            !self.success && needles.iter().any(|n| lower.contains(&n.to_lowercase())),
            "expected a failure mentioning one of {needles:?}:\n{}",
            self.text
        );
    }
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Outcome {
    let what = format!("{cmd:?}");
    let out = match stdin {
        None => output_within(&mut cmd, CLI_TIMEOUT),
        Some(input) => with_stdin(cmd, input),
    };
    Outcome::from(what, out)
}

/// Run with `input` on stdin (passwords are never put on command lines).
fn with_stdin(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("client output")
}

/// The docker CLI with a private config directory (its logins), against the machine's
/// Docker Engine. Images it pulled are removed on drop.
pub struct Docker {
    config: TempDir,
    pulled: std::cell::RefCell<Vec<String>>,
}

impl Default for Docker {
    fn default() -> Self {
        Docker {
            config: tempfile::tempdir().expect("docker config dir"),
            pulled: Default::default(),
        }
    }
}

impl Docker {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", self.config.path()).args(args);
        cmd
    }

    pub fn login(&self, registry: &str, user: &str, key: &str) -> Outcome {
        let cmd = self.cmd(&["login", registry, "-u", user, "--password-stdin"]);
        run(cmd, Some(key))
    }

    pub fn pull(&self, image: &str) -> Outcome {
        self.pulled.borrow_mut().push(image.to_string());
        run(self.cmd(&["pull", image]), None)
    }

    /// Remove a pulled image, so that the next pull fetches its manifest again.
    pub fn remove(&self, image: &str) {
        let _ = self.cmd(&["rmi", "--force", image]).output();
    }

    /// Images already in the engine whose layers (uncompressed digests, bottom first) start
    /// with `chain`, by tag or id: while one exists, docker reports the top of that chain
    /// "Already exists" on any pull.
    pub fn images_with_chain(&self, chain: &[String]) -> Vec<String> {
        let out = self.cmd(&["image", "ls", "-aq", "--no-trunc"]).output();
        let out = out.expect("docker image ls");
        assert!(out.status.success(), "docker image ls: {out:?}");
        let ids = String::from_utf8_lossy(&out.stdout).into_owned();
        if ids.trim().is_empty() {
            return Vec::new();
        }
        let mut args = vec!["image", "inspect"];
        args.extend(ids.split_whitespace());
        let out = self.cmd(&args).output().expect("docker image inspect");
        let images: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("docker image inspect prints JSON");
        images
            .iter()
            .filter(|image| {
                let layers = image["RootFS"]["Layers"].as_array();
                let layers: Vec<&str> = layers
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str())
                    .collect();
                layers.len() >= chain.len() && layers.iter().zip(chain).all(|(a, b)| a == b)
            })
            .map(
                |image| match image["RepoTags"].get(0).and_then(|t| t.as_str()) {
                    Some(tag) => tag.to_string(),
                    None => image["Id"].as_str().unwrap_or("?").to_string(),
                },
            )
            .collect()
    }

    pub fn run(&self, image: &str, args: &[&str]) -> Outcome {
        let mut all = vec!["run", "--rm", "--network", "none", image];
        all.extend(args);
        run(self.cmd(&all), None)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for image in self.pulled.borrow().iter() {
            let _ = self.cmd(&["rmi", "--force", image]).output();
        }
    }
}

/// podman with its own storage (vfs: no kernel overlay needed) and auth file.
pub struct Podman {
    dir: TempDir,
}

impl Default for Podman {
    fn default() -> Self {
        let dir = tempfile::tempdir().expect("podman dir");
        // podman refuses an auth file that does not exist yet.
        std::fs::write(dir.path().join("auth.json"), "{}").expect("auth file");
        Podman { dir }
    }
}

impl Podman {
    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("REGISTRY_AUTH_FILE", d.join("auth.json"))
            .env("XDG_RUNTIME_DIR", d.join("xdg"));
        cmd
    }

    pub fn login(&self, registry: &str, user: &str, key: &str) -> Outcome {
        let args = [
            "login",
            "--tls-verify=false",
            registry,
            "-u",
            user,
            "--password-stdin",
        ];
        run(self.cmd(&args), Some(key))
    }

    pub fn pull(&self, image: &str) -> Outcome {
        run(self.cmd(&["pull", "--tls-verify=false", image]), None)
    }

    /// Pull with debug logs until podman logs a 429 (then stop it) or `limit` passes; its
    /// stderr. podman 4.3 retries a 429 for about 20 minutes before it gives up (five tries
    /// honouring Retry-After up to 60 s, and the whole pull three more times), too long to wait
    /// for in a test; what it logs on the first 429 is what its user sees with `--log-level`.
    pub fn pull_until_too_many_requests(&self, image: &str, limit: Duration) -> String {
        let log = self.dir.path().join("pull.log");
        let file = std::fs::File::create(&log).expect("podman log file");
        let mut child = self
            .cmd(&["--log-level=debug", "pull", "--tls-verify=false", image])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn podman");
        let deadline = std::time::Instant::now() + limit;
        let seen = |text: &str| {
            let lower = text.to_lowercase();
            lower.contains("429") || lower.contains("too many requests")
        };
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let finished = matches!(child.try_wait(), Ok(Some(_)));
            if finished || seen(&text) || std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return std::fs::read_to_string(&log).unwrap_or_default();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Run a pulled image without network; cgroupfs, as the test process owns no systemd
    /// scope, and small ulimits, as podman's defaults (even `--ulimit host`) may exceed the
    /// hard limits a container gives its root.
    pub fn run(&self, image: &str, args: &[&str]) -> Outcome {
        let mut all = vec!["--cgroup-manager", "cgroupfs", "run", "--rm"];
        all.extend([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
        all.extend(["--network", "none", image]);
        all.extend(args);
        run(self.cmd(&all), None)
    }
}

/// `skopeo copy` of `image` (a registry reference, without `docker://`) to an OCI layout in
/// a temp dir, with `creds` (`user:key`) if given.
pub fn skopeo_copy(image: &str, creds: Option<&str>) -> Outcome {
    let dir = tempfile::tempdir().expect("skopeo dir");
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--src-tls-verify=false", "--retry-times", "0"]);
    if let Some(creds) = creds {
        cmd.args(["--src-creds", creds]);
    }
    cmd.arg(format!("docker://{image}"))
        .arg(format!("oci:{}:img", dir.path().display()));
    run(cmd, None)
}
