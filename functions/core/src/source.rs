//! Package sources: where Nix finds the packages an image names.
//!
//! The source is chosen by the operator; the client only picks the tag,
//! which a git source uses as its ref (or commit). Everything reaches Nix as
//! JSON data, see `nix/resolve.nix`.

use crate::name::is_commit;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    /// A nixpkgs channel (or a nixpkgs commit) fetched as a tarball.
    Channel(String),
    /// A git repository holding a nixpkgs-like package set.
    Git { url: String },
    /// A local directory, with the content hash taken when the source was made.
    Path { path: PathBuf, content_hash: String },
}

impl PackageSource {
    /// A local path source; hashes its files now so that its images can be cached.
    pub fn local(path: &Path) -> std::io::Result<Self> {
        let path = std::fs::canonicalize(path)?;
        let content_hash = hash_tree(&path)?;
        Ok(PackageSource::Path { path, content_hash })
    }

    /// The JSON object `nix/resolve.nix` reads as `source`.
    pub fn to_json(&self, tag: &str) -> Value {
        match self {
            PackageSource::Channel(name) => json!({"type": "channel", "name": name}),
            PackageSource::Path { path, .. } => json!({"type": "path", "path": path}),
            PackageSource::Git { url } if is_commit(tag) => {
                json!({"type": "git", "url": url, "rev": tag})
            }
            PackageSource::Git { url } if tag == "latest" => json!({"type": "git", "url": url}),
            PackageSource::Git { url } => json!({"type": "git", "url": url, "ref": tag}),
        }
    }

    /// A stable identity of the exact package set, when there is one. Only
    /// then may a manifest be cached: a moving channel or branch can change
    /// under the same name.
    pub fn pin(&self, tag: &str) -> Option<String> {
        match self {
            PackageSource::Channel(name) if is_commit(name) => Some(format!("nixpkgs:{name}")),
            PackageSource::Channel(_) => None,
            PackageSource::Git { url } if is_commit(tag) => Some(format!("git:{url}@{tag}")),
            PackageSource::Git { .. } => None,
            PackageSource::Path { content_hash, .. } => Some(format!("path:{content_hash}")),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PackageSource::Channel(name) => format!("nixpkgs channel {name}"),
            PackageSource::Git { url } => format!("git repository {url}"),
            PackageSource::Path { path, .. } => format!("local path {}", path.display()),
        }
    }
}

/// A hash over relative paths, file contents and symlink targets of a
/// directory tree, in sorted order, skipping `.git`.
fn hash_tree(root: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        // Reverse so that popping visits names in sorted order.
        for e in entries.into_iter().rev() {
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type()?;
            h.update(rel.as_bytes());
            h.update([0]);
            if ft.is_symlink() {
                h.update(std::fs::read_link(&p)?.to_string_lossy().as_bytes());
            } else if ft.is_dir() {
                stack.push(p);
            } else {
                h.update(std::fs::read(&p)?);
            }
            h.update([0]);
        }
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_tag_selects_ref_or_commit() {
        let s = PackageSource::Git {
            url: "https://example.org/pkgs.git".into(),
        };
        let commit = "a".repeat(40);
        assert_eq!(s.to_json("latest")["ref"], Value::Null);
        assert_eq!(s.to_json("release-24.05")["ref"], "release-24.05");
        assert_eq!(s.to_json(&commit)["rev"], commit.as_str());
        assert!(s.pin("latest").is_none());
        assert!(s.pin(&commit).is_some());
    }

    #[test]
    fn channel_is_pinned_only_by_commit() {
        assert!(PackageSource::Channel("nixos-unstable".into())
            .pin("x")
            .is_none());
        assert!(PackageSource::Channel("b".repeat(40)).pin("x").is_some());
    }

    #[test]
    fn path_hash_follows_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("default.nix"), "{}").expect("write");
        let a = PackageSource::local(dir.path()).expect("hash");
        let b = PackageSource::local(dir.path()).expect("hash");
        assert_eq!(a.pin("latest"), b.pin("other-tag"));
        std::fs::write(dir.path().join("default.nix"), "{ }").expect("write");
        let c = PackageSource::local(dir.path()).expect("hash");
        assert_ne!(a.pin("latest"), c.pin("latest"));
    }
}
