//! The builder Lambda's container image, built with `scripts/builder-image.sh` and run by the
//! machine's Docker Engine the way Lambda runs it: read-only root, a tmpfs `/tmp` (mode 1777),
//! a uid that is not in the image's passwd, no capabilities, no new privileges, no HOME
//! passed, Lambda's variables, and the Runtime Interface Emulator (RIE, from the aws-sam-cli
//! wheel) as entry point in front of the function.
//!
//! The container shares the host's network namespace (`--network host`) so that it reaches
//! the test's servers, which all listen on 127.0.0.1 only; its RIE listens on 127.0.0.1 too.
//! Nothing in its configuration names a host elsewhere (no substituters, the cache, channel
//! and AWS endpoints are loopback URLs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::process::{free_port, ChildGuard};
use super::{nixery_bin, output_within, run_tool, tail, target_dir, workspace_root, CLI_TIMEOUT};

/// Lambda's uid is arbitrary and absent from the image's /etc/passwd.
pub const LAMBDA_UID: &str = "4242:4242";
/// Lambda's smallest ephemeral storage, the Terraform default.
pub const TMP_SIZE: &str = "512m";
/// The RIE's invoke API knows one function, under this name.
pub const RIE_FUNCTION: &str = "function";
/// The base image, kept between runs like `target/` (made from Debian packages in ~20 s).
const BASE_TAG: &str = "nixery-test-builder-base:trixie-x86_64";
/// From `docker run` to the RIE listening.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often /tmp's use is sampled.
const SAMPLE: Duration = Duration::from_millis(50);

/// A file next to the `nixery` binary (the same cargo profile), unless `var` names one.
fn built_binary(var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| nixery_bin().with_file_name(name));
    assert!(
        path.is_file(),
        "{name} not found at {}: `cargo build -p nixery-builder-lambda` or set {var}",
        path.display()
    );
    path
}

/// The RIE: `$NIXERY_LAMBDA_RIE`, else `<target>/lambda-rie/aws-lambda-rie-x86_64`, where
/// tests/run.sh unpacks it from the aws-sam-cli wheel.
pub fn rie_binary() -> PathBuf {
    let default = || target_dir().join("lambda-rie/aws-lambda-rie-x86_64");
    let path = std::env::var_os("NIXERY_LAMBDA_RIE")
        .map(PathBuf::from)
        .unwrap_or_else(default);
    assert!(
        path.is_file(),
        "the Lambda Runtime Interface Emulator is not at {} (tests/run.sh unpacks it from \
         `pip download --no-deps aws-sam-cli`; or set NIXERY_LAMBDA_RIE)",
        path.display()
    );
    path
}

/// A docker image tag, removed on drop.
pub struct BuilderImage {
    pub tag: String,
}

impl BuilderImage {
    /// `scripts/builder-image.sh` with the builder binary cargo built for the tests, so that
    /// CI does not compile it again in release mode.
    pub fn build() -> BuilderImage {
        let dir = tempfile::tempdir().expect("temp dir");
        let built = built_binary("NIXERY_BUILDER_BIN", "nixery-builder-lambda");
        let binary = stripped(&built, dir.path());
        let tag = format!("nixery-test-builder:{}", std::process::id());
        let script = workspace_root().join("scripts/builder-image.sh");
        let out = output_within(
            Command::new(script).arg("--binary").arg(&binary).args([
                "--arch",
                "x86_64",
                "--tag",
                &tag,
                "--base-tag",
                BASE_TAG,
            ]),
            CLI_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "scripts/builder-image.sh failed:\n{}",
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        );
        BuilderImage { tag }
    }
}

/// A copy of `binary` in `dir` without debug information: a debug build's is ~0.5 GB, which
/// every image build would copy and commit.
fn stripped(binary: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("nixery-builder-lambda");
    let mut cmd = Command::new("strip");
    cmd.arg("--strip-debug").arg("-o").arg(&out).arg(binary);
    let done = output_within(&mut cmd, CLI_TIMEOUT);
    assert!(
        done.status.success(),
        "strip (binutils) failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    out
}

impl Drop for BuilderImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "--force", &self.tag])
            .output();
    }
}

/// The builder image running under the RIE, removed on drop.
pub struct LambdaContainer {
    pub name: String,
    /// The invoke API: `{endpoint}/2015-03-31/functions/function/invocations`.
    pub endpoint: String,
    process: ChildGuard,
    tmp_peak: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl LambdaContainer {
    /// Run `image` as Lambda would, with the function's `env` on top of Lambda's own.
    pub fn start(image: &BuilderImage, env: &[(String, String)]) -> LambdaContainer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (invoke_port, runtime_port) = (free_port(), free_port());
        let name = format!("nixery-test-builder-{}-{invoke_port}", std::process::id());
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "--name", &name])
            .args(lambda_constraints())
            .arg("--volume")
            .arg(format!("{}:/aws-lambda-rie:ro", rie_binary().display()))
            .args(["--entrypoint", "/aws-lambda-rie"]);
        for (k, v) in lambda_env(runtime_port).iter().chain(env) {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        cmd.arg(&image.tag)
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{invoke_port}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime_port}"))
            .arg("/usr/local/bin/nixery-builder-lambda");
        let log = dir.path().join("container.log");
        let mut process = ChildGuard::spawn(cmd, &log, "docker run (the builder image)");
        process.wait_port(invoke_port, LISTEN_TIMEOUT);
        let container = LambdaContainer {
            name,
            endpoint: format!("http://127.0.0.1:{invoke_port}"),
            process,
            tmp_peak: Arc::new(AtomicU64::new(0)),
            sampling: Arc::new(AtomicBool::new(true)),
            _dir: dir,
        };
        container.sample_tmp();
        container
    }

    /// The RIE's and the function's output.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The most /tmp held at any sample so far, in bytes.
    pub fn tmp_peak(&self) -> u64 {
        self.tmp_peak.load(Ordering::SeqCst)
    }

    /// The RIE's first REPORT line (durations, memory), once there is one.
    pub fn report(&self) -> Option<String> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("REPORT RequestId"))?;
        Some(line.to_string())
    }

    /// The init phase's duration (from starting the function to its first request for an
    /// event), as the RIE reports it: `INIT REPORT(durationMs: …)`. (Its REPORT line's
    /// "Init Duration" is not that: it stays under a millisecond.)
    pub fn init_duration_ms(&self) -> Option<f64> {
        let re = regex::Regex::new(r"INIT REPORT\(durationMs: ([0-9.]+)\)").expect("regex");
        re.captures(&self.log()).and_then(|c| c[1].parse().ok())
    }

    /// Sample the container's /tmp (seen from here through its init's /proc root) until the
    /// container is dropped.
    fn sample_tmp(&self) {
        let pid = run_tool("docker", &["inspect", "-f", "{{.State.Pid}}", &self.name]);
        let tmp = format!("/proc/{}/root/tmp", pid.trim());
        let (peak, sampling) = (self.tmp_peak.clone(), self.sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                if let Some(used) = used_bytes(&tmp) {
                    peak.fetch_max(used, Ordering::SeqCst);
                }
                std::thread::sleep(SAMPLE);
            }
        });
    }
}

impl Drop for LambdaContainer {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::SeqCst);
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.name])
            .output();
        self.process.stop();
    }
}

/// What Lambda imposes on a function's container.
fn lambda_constraints() -> Vec<String> {
    [
        "--read-only",
        "--tmpfs",
        &format!("/tmp:rw,size={TMP_SIZE},mode=1777"),
        "--user",
        LAMBDA_UID,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "host",
    ]
    .map(str::to_string)
    .to_vec()
}

/// The variables Lambda sets for a function (the RIE sets the runtime API's address for the
/// function itself too; the values here are what Lambda's would look like).
fn lambda_env(runtime_port: u16) -> Vec<(String, String)> {
    [
        (
            "AWS_LAMBDA_RUNTIME_API",
            format!("127.0.0.1:{runtime_port}"),
        ),
        ("AWS_LAMBDA_FUNCTION_NAME", "nixery-builder".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096".into()),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "900".into()),
        ("AWS_REGION", super::aws::REGION.into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Bytes in use on the filesystem holding `path`, from statfs (`stat -f`; `df` would look
/// the path up in this mount namespace's table and report /proc).
fn used_bytes(path: &str) -> Option<u64> {
    let out = Command::new("stat")
        .args(["--file-system", "--format=%b %f %S", path])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match n[..] {
        [blocks, free, size] => Some(blocks.saturating_sub(free) * size),
        _ => None,
    }
}
