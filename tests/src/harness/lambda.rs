//! The Lambda runtime emulator (`cargo lambda watch`) running one of the workspace's
//! function binaries behind the Lambda Invoke API.

use std::time::Duration;

use serde_json::Value;

use super::process::{free_port, ChildGuard};
use super::{cargo_command, nix_config, output_within, tail};

/// Compiling a function (the AWS SDK) on two shared cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// From `cargo lambda watch` starting to its Invoke API listening.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);
/// The first invocation waits for cargo-lambda to start the function.
const FIRST_INVOKE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// `cargo lambda watch` serving the Invoke API for the binary named like its package at
/// `{endpoint}/2015-03-31/functions/<package>/invocations`.
pub struct LambdaWatch {
    process: ChildGuard,
    pub endpoint: String,
    pub function: String,
    _dir: tempfile::TempDir,
}

impl LambdaWatch {
    /// Build `package` (bounded, with readable errors), then run it under the emulator with
    /// `env` as the function's environment, and wait until it answers.
    pub fn start(package: &str, env: &[(String, String)]) -> LambdaWatch {
        require_cargo_lambda();
        build(package);
        let dir = tempfile::tempdir().expect("temp dir");
        let env_file = dir.path().join("env");
        // Single-quoted: dotenv takes such values literally (keys hold '=' and ':').
        let lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
        std::fs::write(&env_file, lines.join("\n") + "\n").expect("env file");
        let port = free_port();
        let mut cmd = cargo_command();
        cmd.args(["lambda", "watch", "--ignore-changes", "--color", "never"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["-p", package, "--bin", package])
            .arg("--env-file")
            .arg(&env_file)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env("NO_COLOR", "1")
            .env("NIX_CONFIG", nix_config());
        let what = "cargo lambda watch (pip install cargo-lambda)";
        let mut process = ChildGuard::spawn(cmd, &dir.path().join("watch.log"), what);
        process.wait_port(port, LISTEN_TIMEOUT);
        LambdaWatch {
            process,
            endpoint: format!("http://127.0.0.1:{port}"),
            function: package.to_string(),
            _dir: dir,
        }
    }

    /// The emulator's and the function's output.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Invoke once with `payload`, so that the function is compiled and running (the
    /// emulator starts it on the first invocation). Any answer will do, even an error.
    pub fn warm_up(&self, payload: &str) {
        if let Err(e) = self.post(payload, FIRST_INVOKE_TIMEOUT) {
            panic!("warm-up invocation failed: {e}\n{}", tail(&self.log(), 80));
        }
    }

    /// Invoke the function through the Invoke API; its JSON answer.
    pub fn try_invoke(&self, payload: &str, timeout: Duration) -> Result<Value, String> {
        let (status, text) = self.post(payload, timeout)?;
        if !status.is_success() {
            return Err(format!("invoke answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("invoke result is not JSON ({e}): {text}"))
    }

    fn post(
        &self,
        payload: &str,
        timeout: Duration,
    ) -> Result<(reqwest::StatusCode, String), String> {
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.endpoint, self.function
        );
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(payload.to_string())
            .send()
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| e.to_string())?;
        Ok((status, text))
    }
}

fn require_cargo_lambda() {
    let ok = cargo_command()
        .args(["lambda", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "cargo-lambda is required for this test: `pip install cargo-lambda` \
         (tests/run.sh installs it), then `pyenv rehash` if you use pyenv"
    );
}

fn build(package: &str) {
    let out = output_within(
        cargo_command().args(["build", "-p", package, "--bin", package]),
        BUILD_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "building {package} failed:\n{}",
        tail(&String::from_utf8_lossy(&out.stderr), 60)
    );
}
