//! A Nix >= 2.18 for the local path: Debian 13's, unpacked by `scripts/nix-rootfs.sh` (which
//! tests/run.sh runs into `<target>/nix-trixie`), with a store of its own. A newer Nix upgrades
//! the store database's schema, after which the machine's Nix 2.8 could not open it; so the
//! processes using it run in a private mount namespace where a temp directory is `/nix`.
//! Store paths keep their `/nix/store` names, so the images are the same as elsewhere.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::{nix_config, output_within, target_dir, CLI_TIMEOUT};

/// A modern Nix's programs and a store directory for it, removed on drop.
pub struct ModernNix {
    /// Holds nix, nix-build, nix-instantiate and nix-store (for `--nix-bin-dir`).
    pub bin_dir: PathBuf,
    store: TempDir,
}

impl ModernNix {
    /// `$NIXERY_TEST_NIX_BIN_DIR`, else `<target>/nix-trixie/bin`, with a fresh store.
    pub fn new() -> ModernNix {
        let default = || target_dir().join("nix-trixie/bin");
        let bin_dir = std::env::var_os("NIXERY_TEST_NIX_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(default);
        assert!(
            bin_dir.join("nix-instantiate").is_file(),
            "no modern Nix in {}: run tests/run.sh, or `scripts/nix-rootfs.sh DIR` and set \
             NIXERY_TEST_NIX_BIN_DIR=DIR/bin",
            bin_dir.display()
        );
        let store = tempfile::Builder::new()
            .prefix("nixery-modern-nix")
            .tempdir()
            .expect("store dir");
        ModernNix { bin_dir, store }
    }

    /// The directory that is `/nix` for the wrapped commands.
    pub fn root(&self) -> &Path {
        self.store.path()
    }

    /// A prefix that runs a command in a private mount namespace with [`Self::root`] as
    /// `/nix` (needs root, as the containerd tests do).
    pub fn wrapper(&self) -> Vec<OsString> {
        let mut words: Vec<OsString> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            r#"mount --bind "$0" /nix && exec "$@""#,
        ]
        .iter()
        .map(OsString::from)
        .collect();
        words.push(self.root().as_os_str().to_owned());
        words
    }

    /// Run one of this Nix's programs under [`Self::wrapper`]; its stdout (panics on failure).
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let words = self.wrapper();
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..])
            .arg(self.bin_dir.join(program))
            .args(args)
            .env("NIX_CONFIG", nix_config());
        let out = output_within(&mut cmd, CLI_TIMEOUT);
        assert!(
            out.status.success(),
            "{program} {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for ModernNix {
    fn default() -> Self {
        Self::new()
    }
}
