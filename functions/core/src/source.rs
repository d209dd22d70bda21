//! Package sources: where Nix finds the packages an image names, and how a source that moves
//! (a channel, a git branch) is pinned to one exact package set, so that its images can be
//! cached under that pin.
//!
//! The source is chosen by the operator; the client only picks the tag, which a git source
//! uses as its ref (or commit). Everything reaches Nix as JSON data, see `nix/resolve.nix`.

use crate::name::is_commit;
use crate::nix::{Nix, NixError};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where channel names are looked up: `https://channels.nixos.org/<name>` redirects to the
/// channel's current release, which holds `git-revision` and `nixexprs.tar.xz`.
pub const CHANNELS_URL: &str = "https://channels.nixos.org";
/// Bounds a channel lookup; the release listing is a few bytes.
const CHANNEL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    /// A nixpkgs channel: a name (`nixos-unstable`), a channel URL, or a nixpkgs commit.
    Channel(String),
    /// A git repository holding a nixpkgs-like package set.
    Git { url: String },
    /// A local directory, with the content hash taken when the source was made.
    Path { path: PathBuf, content_hash: String },
}

/// A source resolved to one exact package set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Names the package set in manifest keys (hashes stand in for URLs, which may carry
    /// credentials).
    pub id: String,
    /// What `nix/resolve.nix` reads as `source`.
    pub nix: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("looking up channel {channel}: {reason}")]
    Channel { channel: String, reason: String },
    #[error("resolving the git ref {tag:?}: {source}")]
    Git { tag: String, source: NixError },
}

impl PackageSource {
    /// A local path source; hashes its files now so that its images can be cached.
    pub fn local(path: &Path) -> std::io::Result<Self> {
        let path = std::fs::canonicalize(path)?;
        let content_hash = hash_tree(&path)?;
        Ok(PackageSource::Path { path, content_hash })
    }

    /// What a request names before resolution: the configured source, and the tag where it
    /// selects something (a git ref). Channels and paths ignore the tag, so varying it
    /// cannot make new images or builds.
    pub fn identity(&self, tag: &str) -> String {
        match self {
            PackageSource::Channel(name) => format!("channel:{name}"),
            PackageSource::Git { url } => format!("git:{}#{tag}", hash_str(url)),
            PackageSource::Path { content_hash, .. } => format!("path:{content_hash}"),
        }
    }

    /// The pin, when the source is fixed without asking anyone: a path (by its content hash),
    /// a nixpkgs commit, a git commit given as the tag.
    pub fn fixed_pin(&self, tag: &str) -> Option<Pinned> {
        match self {
            PackageSource::Path { path, content_hash } => Some(Pinned {
                id: format!("path:{content_hash}"),
                nix: json!({"type": "path", "path": path}),
            }),
            PackageSource::Channel(name) if is_commit(name) => Some(Pinned {
                id: format!("nixpkgs:{name}"),
                nix: json!({"type": "channel", "name": name}),
            }),
            PackageSource::Git { url } if is_commit(tag) => Some(Pinned {
                id: format!("git:{}@{tag}", hash_str(url)),
                nix: json!({"type": "git", "url": url, "rev": tag}),
            }),
            _ => None,
        }
    }

    /// Resolve to the package set the source holds now: a channel's current commit (over
    /// HTTP), a git ref's head commit (through Nix, which also fetches it for the build).
    pub async fn pin(&self, tag: &str, nix: &Nix) -> Result<Pinned, SourceError> {
        if let Some(pinned) = self.fixed_pin(tag) {
            return Ok(pinned);
        }
        match self {
            PackageSource::Channel(name) => pin_channel(name).await,
            PackageSource::Git { url } => pin_git(url, tag, nix).await,
            PackageSource::Path { .. } => unreachable!("paths are always pinned"),
        }
    }

    /// Whether the source is nixpkgs as far as can be told without fetching it: a channel
    /// name or nixpkgs commit (those come from NixOS), a URL whose last path segment is
    /// `nixpkgs` (a clone or fork, a channel under nixos.org), a directory or `file://`
    /// repository holding nixpkgs' `lib/minver.nix`. nixpkgs aborts on a Nix older than that file says, so the registry
    /// checks before serving; other package sets bring their own requirements.
    pub fn is_nixpkgs(&self) -> bool {
        match self {
            PackageSource::Channel(name) => !is_url(name) || names_nixpkgs(name),
            PackageSource::Git { url } => names_nixpkgs(url),
            PackageSource::Path { path, .. } => path.join("lib/minver.nix").is_file(),
        }
    }

    /// For people: the landing page, logs and error messages. Credentials in URLs are
    /// replaced by `***`.
    pub fn describe(&self) -> String {
        match self {
            PackageSource::Channel(name) => format!("nixpkgs channel {}", redact(name)),
            PackageSource::Git { url } => format!("git repository {}", redact(url)),
            PackageSource::Path { path, .. } => format!("local path {}", path.display()),
        }
    }
}

fn is_url(name: &str) -> bool {
    name.starts_with("http://") || name.starts_with("https://")
}

/// A URL on nixos.org, or one whose last path segment is `nixpkgs` (`.git` aside); a
/// `file://` repository is judged by its files instead (its directory names are arbitrary).
fn names_nixpkgs(url: &str) -> bool {
    if let Some(dir) = url.strip_prefix("file://") {
        return Path::new(dir).join("lib/minver.nix").is_file();
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    let last = rest.trim_end_matches('/').rsplit(['/', ':']).next();
    host == "nixos.org"
        || host.ends_with(".nixos.org")
        || last.is_some_and(|l| l.trim_end_matches(".git").eq_ignore_ascii_case("nixpkgs"))
}

/// The URL of a channel: a name under [`CHANNELS_URL`], or the URL given.
fn channel_url(name: &str) -> String {
    match is_url(name) {
        true => name.trim_end_matches('/').to_string(),
        false => format!("{CHANNELS_URL}/{name}"),
    }
}

/// A channel redirects to its current release; the release holds the nixpkgs commit in
/// `git-revision` and the package set in `nixexprs.tar.xz`, both immutable.
async fn pin_channel(name: &str) -> Result<Pinned, SourceError> {
    let fail = |reason: String| SourceError::Channel {
        channel: redact(name),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(CHANNEL_TIMEOUT)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let url = format!("{}/git-revision", channel_url(name));
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("git-revision answered {}", resp.status())));
    }
    let release = resp
        .url()
        .as_str()
        .trim_end_matches("/git-revision")
        .to_string();
    let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
    let commit = body.trim();
    if !is_commit(commit) {
        return Err(fail("git-revision does not hold a commit".into()));
    }
    Ok(Pinned {
        id: format!("nixpkgs:{commit}"),
        nix: json!({"type": "tarball", "url": format!("{release}/nixexprs.tar.xz")}),
    })
}

/// A git ref's head, as `builtins.fetchGit` sees it. `latest` means the default branch.
async fn pin_git(url: &str, tag: &str, nix: &Nix) -> Result<Pinned, SourceError> {
    let git_ref = if tag == "latest" { "HEAD" } else { tag };
    let moving = json!({"type": "git", "url": url, "ref": git_ref});
    let fail = |source| SourceError::Git {
        tag: tag.to_string(),
        source,
    };
    let rev = nix.pin(&moving).await.map_err(fail)?;
    if !is_commit(&rev) {
        return Err(fail(NixError::BadOutput {
            program: "nix-instantiate".into(),
            reason: "the pin is not a commit".into(),
        }));
    }
    Ok(Pinned {
        id: format!("git:{}@{rev}", hash_str(url)),
        nix: json!({"type": "git", "url": url, "ref": git_ref, "rev": rev}),
    })
}

fn hash_str(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..16])
}

/// A URL with any `user:password@` replaced by `***@`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
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
    fn git_commit_tags_are_pinned_and_refs_are_not() {
        let s = PackageSource::Git {
            url: "https://example.org/pkgs.git".into(),
        };
        let commit = "a".repeat(40);
        assert!(s.fixed_pin("latest").is_none());
        assert!(s.fixed_pin("release-24.05").is_none());
        let pinned = s.fixed_pin(&commit).expect("a commit is a pin");
        assert_eq!(pinned.nix["rev"], commit.as_str());
        assert_ne!(
            s.identity("main"),
            s.identity("dev"),
            "the tag selects the ref"
        );
    }

    #[test]
    fn channels_ignore_the_tag_and_commits_are_pinned() {
        let c = PackageSource::Channel("nixos-unstable".into());
        assert!(c.fixed_pin("x").is_none());
        assert_eq!(c.identity("a"), c.identity("b"));
        assert!(PackageSource::Channel("b".repeat(40))
            .fixed_pin("x")
            .is_some());
        assert_eq!(
            channel_url("nixos-24.05"),
            "https://channels.nixos.org/nixos-24.05"
        );
        assert_eq!(channel_url("http://127.0.0.1:9/c/"), "http://127.0.0.1:9/c");
    }

    #[test]
    fn nixpkgs_is_recognised_without_fetching() {
        let channel = |n: &str| PackageSource::Channel(n.into()).is_nixpkgs();
        let git = |u: &str| PackageSource::Git { url: u.into() }.is_nixpkgs();
        assert!(channel("nixos-unstable") && channel(&"c".repeat(40)));
        assert!(channel("https://channels.nixos.org/nixos-24.05"));
        assert!(!channel("http://127.0.0.1:9/nixos-test"));
        assert!(git("https://github.com/NixOS/nixpkgs"));
        assert!(git("https://github.com/me/nixpkgs.git/"));
        assert!(git("git@github.com:NixOS/nixpkgs.git"));
        assert!(!git("https://example.org/nixpkgs-tools"));
        let top = tempfile::tempdir().expect("tempdir");
        let dir = top.path().join("nixpkgs");
        let file_url = format!("file://{}", dir.display());
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("default.nix"), "{}").expect("write");
        assert!(!PackageSource::local(&dir).expect("hash").is_nixpkgs());
        assert!(!git(&file_url), "a local repository is judged by its files");
        std::fs::create_dir(dir.join("lib")).expect("mkdir");
        std::fs::write(dir.join("lib/minver.nix"), "\"2.18\"").expect("write");
        assert!(PackageSource::local(&dir).expect("hash").is_nixpkgs());
        assert!(git(&file_url));
    }

    #[test]
    fn path_hash_follows_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("default.nix"), "{}").expect("write");
        let a = PackageSource::local(dir.path()).expect("hash");
        let b = PackageSource::local(dir.path()).expect("hash");
        assert_eq!(a.fixed_pin("latest"), b.fixed_pin("other-tag"));
        assert_eq!(a.identity("x"), b.identity("y"));
        std::fs::write(dir.path().join("default.nix"), "{ }").expect("write");
        let c = PackageSource::local(dir.path()).expect("hash");
        assert_ne!(a.fixed_pin("latest"), c.fixed_pin("latest"));
    }

    #[test]
    fn credentials_never_reach_descriptions() {
        let s = PackageSource::Git {
            url: "https://user:s3cret@example.org/pkgs.git".into(),
        };
        let d = s.describe();
        assert!(!d.contains("s3cret") && !d.contains("user"), "{d}");
        assert!(d.contains("example.org/pkgs.git"), "{d}");
        assert!(!s.identity("main").contains("s3cret"));
        assert_eq!(redact("git@github.com:x/y"), "git@github.com:x/y");
        assert_eq!(redact("https://h/p@q"), "https://h/p@q");
    }
}
