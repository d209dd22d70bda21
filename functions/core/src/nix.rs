//! The Nix calls: resolve names to store paths, realise them, read the
//! closure. Names travel as JSON in `--argstr request`, never as Nix code,
//! and processes are spawned directly, never through a shell.

use crate::graph::{ClosureGraph, GraphError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The resolver expression, shipped inside the binary so that no install
/// layout has to be found at run time.
pub const RESOLVE_NIX: &str = include_str!("../../../nix/resolve.nix");

#[derive(Debug, thiserror::Error)]
pub enum NixError {
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {secs} s (raise --nix-timeout if builds are legitimately slow)")]
    Timeout { program: String, secs: u64 },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("unexpected output from {program}: {reason}")]
    BadOutput { program: String, reason: String },
    #[error("reading the closure: {0}")]
    Graph(#[from] GraphError),
    #[error("writing the resolver expression: {0}")]
    Setup(std::io::Error),
}

/// A package set must not build during evaluation (import from derivation): with the
/// sandbox off, that build would run unconfined, and in Lambda it cannot run at all.
const NO_IFD: [&str; 3] = ["--option", "allow-import-from-derivation", "false"];

/// How to call Nix.
#[derive(Debug, Clone)]
pub struct Nix {
    /// Where `resolve.nix` is written.
    resolver: PathBuf,
    pub timeout: Duration,
    /// Where the Nix programs are; `None`: looked up in PATH. Lets one machine run a newer
    /// Nix (say Debian 13's, in a root filesystem of its own) than the one it has installed.
    bin_dir: Option<PathBuf>,
}

/// The oldest Nix that current nixpkgs evaluates with (its `lib/minver.nix`).
pub const NIXPKGS_MIN_NIX: NixVersion = NixVersion(2, 18, 0);

/// A Nix release number, as `nix-instantiate --version` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NixVersion(pub u32, pub u32, pub u32);

impl NixVersion {
    /// The version in `nix-instantiate (Nix) 2.26.3` (also `2.18.1pre…`, `2.8`).
    pub fn parse(text: &str) -> Option<NixVersion> {
        let word = text.split_whitespace().last()?;
        let mut parts = word.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(NixVersion(major, minor, patch))
    }
}

impl std::fmt::Display for NixVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Names that Nix resolved, and the ones it could not find.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Resolution {
    pub found: BTreeMap<String, String>,
    pub missing: Vec<String>,
}

impl Nix {
    /// Write the resolver into `work_dir` and return a handle for calls.
    pub fn new(work_dir: &std::path::Path, timeout: Duration) -> Result<Self, NixError> {
        std::fs::create_dir_all(work_dir).map_err(NixError::Setup)?;
        let resolver = work_dir.join("resolve.nix");
        std::fs::write(&resolver, RESOLVE_NIX).map_err(NixError::Setup)?;
        Ok(Nix {
            resolver,
            timeout,
            bin_dir: None,
        })
    }

    /// Run the Nix programs from `dir` instead of PATH.
    pub fn with_bin_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.bin_dir = dir;
        self
    }

    /// The version of the Nix that evaluates (`nix-instantiate --version`).
    pub async fn version(&self) -> Result<NixVersion, NixError> {
        let out = self.run("nix-instantiate", &["--version"]).await?;
        NixVersion::parse(&out).ok_or_else(|| NixError::BadOutput {
            program: "nix-instantiate --version".into(),
            reason: format!("no version in {:?}", out.trim()),
        })
    }

    /// Where `program` is run from: the configured directory, else PATH.
    fn program(&self, program: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        }
    }

    /// Evaluate which requested names exist (no build).
    pub async fn resolve(&self, request: &Value) -> Result<Resolution, NixError> {
        self.eval_json(request, "result", &[]).await
    }

    /// The commit a moving git `source` points at now (`resolve.nix`'s `pin`). Nix would
    /// trust its own cached idea of the ref for an hour (`tarball-ttl`); the registry has
    /// its own refresh interval, so Nix must look.
    pub async fn pin(&self, source: &Value) -> Result<String, NixError> {
        let request = serde_json::json!({ "source": source });
        self.eval_json(&request, "pin", &["--option", "tarball-ttl", "0"])
            .await
    }

    async fn eval_json<T: serde::de::DeserializeOwned>(
        &self,
        request: &Value,
        attr: &str,
        options: &[&str],
    ) -> Result<T, NixError> {
        let req = request.to_string();
        let mut args = vec!["--eval", "--strict", "--json"];
        args.extend(NO_IFD);
        args.extend(options);
        args.extend([self.resolver_str(), "--argstr", "request", &req, "-A", attr]);
        let out = self.run("nix-instantiate", &args).await?;
        serde_json::from_str(&out).map_err(|e| NixError::BadOutput {
            program: "nix-instantiate".into(),
            reason: e.to_string(),
        })
    }

    /// Build (realise) the found packages; returns their output paths.
    pub async fn realise(&self, request: &Value) -> Result<Vec<String>, NixError> {
        let req = request.to_string();
        let mut args = NO_IFD.to_vec();
        args.extend([self.resolver_str(), "--argstr", "request", &req]);
        args.extend(["-A", "drvs", "--no-out-link"]);
        let out = self.run("nix-build", &args).await?;
        Ok(out
            .lines()
            .filter(|l| l.starts_with('/'))
            .map(str::to_string)
            .collect())
    }

    /// The runtime closure of `roots`, with sizes and references.
    pub async fn closure(&self, roots: &[String]) -> Result<ClosureGraph, NixError> {
        let mut args = vec![
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "--json",
            "--recursive",
        ];
        args.extend(roots.iter().map(String::as_str));
        let out = self.run("nix", &args).await?;
        Ok(ClosureGraph::from_path_info_json(roots.to_vec(), &out)?)
    }

    fn resolver_str(&self) -> &str {
        self.resolver.to_str().unwrap_or("resolve.nix")
    }

    /// Run one Nix program with a deadline; the child is killed on timeout.
    async fn run(&self, program: &str, args: &[&str]) -> Result<String, NixError> {
        let started = Instant::now();
        let path = self.program(program);
        let child = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NixError::Spawn {
                program: path.display().to_string(),
                source,
            })?;
        let result = tokio::time::timeout(self.timeout, child.wait_with_output()).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(program, elapsed_ms, "{}", crate::events::NIX_CALL);
        let output = result
            .map_err(|_| NixError::Timeout {
                program: program.into(),
                secs: self.timeout.as_secs(),
            })?
            .map_err(|source| NixError::Spawn {
                program: program.into(),
                source,
            })?;
        if !output.status.success() {
            return Err(NixError::Failed {
                program: program.into(),
                status: output.status.to_string(),
                stderr: tail(&String::from_utf8_lossy(&output.stderr), 2000),
            });
        }
        String::from_utf8(output.stdout).map_err(|e| NixError::BadOutput {
            program: program.into(),
            reason: e.to_string(),
        })
    }
}

/// The last `max` bytes of `s` (on a char boundary): Nix puts the cause last.
fn tail(s: &str, max: usize) -> String {
    let s = s.trim_end();
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef\n", 3), "def");
        assert_eq!(tail("ab", 10), "ab");
        assert_eq!(tail("ééé", 3), "é");
    }

    #[test]
    fn versions_parse_and_compare() {
        let v = |s| NixVersion::parse(s);
        assert_eq!(
            v("nix-instantiate (Nix) 2.26.3\n"),
            Some(NixVersion(2, 26, 3))
        );
        assert_eq!(v("nix-instantiate (Nix) 2.8.0"), Some(NixVersion(2, 8, 0)));
        assert_eq!(
            v("nix (Nix) 2.18.1pre20231122_dirty"),
            Some(NixVersion(2, 18, 1))
        );
        assert_eq!(v("nix (Nix) 2.24"), Some(NixVersion(2, 24, 0)));
        assert_eq!(v("garbage"), None);
        assert!(NixVersion(2, 8, 0) < NIXPKGS_MIN_NIX);
        assert!(NixVersion(2, 26, 3) >= NIXPKGS_MIN_NIX);
        assert_eq!(NIXPKGS_MIN_NIX.to_string(), "2.18.0");
    }

    #[tokio::test]
    async fn bin_dir_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nix = Nix::new(dir.path(), Duration::from_secs(5))
            .expect("nix")
            .with_bin_dir(Some(dir.path().join("no-such-dir")));
        let err = nix.version().await.expect_err("must fail");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

    #[tokio::test]
    async fn timeout_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nix = Nix::new(dir.path(), Duration::from_millis(200)).expect("nix");
        let err = nix.run("sleep", &["5"]).await.expect_err("must time out");
        assert!(matches!(err, NixError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn missing_program_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nix = Nix::new(dir.path(), Duration::from_secs(5)).expect("nix");
        let err = nix
            .run("nixery-no-such-program", &[])
            .await
            .expect_err("must fail");
        assert!(matches!(err, NixError::Spawn { .. }), "{err}");
    }
}
