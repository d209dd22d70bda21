//! A signed Nix binary cache of the closures of some attributes of the offline package set,
//! made with `nix copy` and served over HTTP on loopback by Python's web server.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{free_port, ChildGuard};
use super::{nix_config, output_within, pkgs_path, CLI_TIMEOUT};

/// How long the web server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct BinaryCacheServer {
    pub url: String,
    pub public_key: String,
    pub dir: PathBuf,
    _server: ChildGuard,
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
        let (sk_str, pk_str) = (sk.to_str().expect("utf-8"), pk.to_str().expect("utf-8"));
        nix(
            "nix-store",
            &["--generate-binary-cache-key", &name, sk_str, pk_str],
        );
        let mut sign = vec!["store", "sign", "--key-file", sk_str, "--recursive"];
        sign.extend(&paths);
        nix("nix", &sign);
        let dir = tmp.path().join("cache");
        let to = format!("file://{}?compression=xz", dir.display());
        let mut copy = vec!["copy", "--to", &to];
        copy.extend(&paths);
        nix("nix", &copy);
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "http.server", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--directory"])
            .arg(&dir);
        let log = tmp.path().join("http.log");
        let mut server = ChildGuard::spawn(cmd, &log, "python3 -m http.server");
        server.wait_port(port, START_TIMEOUT);
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
