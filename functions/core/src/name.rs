//! Image names: which packages an image holds, for which architecture.
//!
//! A name such as `shell/git/htop` lists packages as path components. The
//! grammar is the OCI distribution one, so anything that could carry Nix code,
//! shell metacharacters, `..` or an encoded slash is rejected here, before any
//! other part of the system sees it.

use std::collections::BTreeSet;
use std::fmt;

/// Longest repository name accepted (Docker's own limit).
pub const MAX_NAME_LEN: usize = 255;

/// Packages added to every image: TLS roots and `/etc/services`.
pub const ALWAYS_ADDED: [&str; 2] = ["cacert", "iana-etc"];

/// What the `shell` meta-package expands to.
pub const SHELL_PACKAGES: [&str; 4] = ["bashInteractive", "coreutils", "moreutils", "nano"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// The host architecture, the default when a name has no `arm64` component.
    pub fn host() -> Self {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }

    /// The Nix system double.
    pub fn nix_system(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-linux",
            Arch::Arm64 => "aarch64-linux",
        }
    }
}

/// How an image's layers are compressed. Gzip pulls everywhere; zstd (`zstd/` before the
/// packages) is smaller and faster to unpack but needs a recent client (README, "Image names").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LayerCodec {
    #[default]
    Gzip,
    Zstd,
}

/// The first component that selects zstd layers. Only as the first of several components:
/// `zstd` is also a package, so `shell/zstd` and a lone `zstd` ask for the tool.
pub const ZSTD_PREFIX: &str = "zstd";

/// Why a name was refused; shown to the client in a `NAME_INVALID` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the image name is empty")]
    Empty,
    #[error("the image name is {0} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong(usize),
    #[error("invalid path component {0:?}: components are lowercase letters, digits and single separators (. _ __ -) between them")]
    BadComponent(String),
    #[error("the image name lists no packages")]
    NoPackages,
}

/// A parsed, validated image request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// The repository name exactly as requested (validated).
    pub repository: String,
    /// Every package to install, sorted and deduplicated, as Nix attribute paths.
    pub packages: BTreeSet<String>,
    pub arch: Arch,
    pub codec: LayerCodec,
}

impl ImageName {
    pub fn parse(repository: &str) -> Result<Self, NameError> {
        validate_repository(repository)?;
        let mut packages = BTreeSet::new();
        let mut arch = Arch::host();
        let (codec, rest) = match repository.split_once('/') {
            Some((ZSTD_PREFIX, rest)) => (LayerCodec::Zstd, rest),
            _ => (LayerCodec::Gzip, repository),
        };
        for component in rest.split('/') {
            match component {
                "shell" => packages.extend(SHELL_PACKAGES.iter().map(|p| p.to_string())),
                "arm64" => arch = Arch::Arm64,
                "amd64" => arch = Arch::Amd64,
                pkg => {
                    packages.insert(pkg.to_string());
                }
            }
        }
        if packages.is_empty() {
            return Err(NameError::NoPackages);
        }
        packages.extend(ALWAYS_ADDED.iter().map(|p| p.to_string()));
        Ok(ImageName {
            repository: repository.to_string(),
            packages,
            arch,
            codec,
        })
    }

    /// Whether `bash` is the natural command of the image.
    pub fn has_shell(&self) -> bool {
        self.packages.contains("bashInteractive")
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)
    }
}

/// Check a repository name against the OCI distribution grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn validate_repository(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(NameError::BadComponent(component.to_string()));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: one '.', one or two '_', or any number of '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Check a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// Whether a tag names a git commit (40 lowercase hex characters).
pub fn is_commit(tag: &str) -> bool {
    tag.len() == 40
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkgs(name: &str) -> Vec<String> {
        ImageName::parse(name)
            .expect("valid name")
            .packages
            .into_iter()
            .collect()
    }

    #[test]
    fn packages_are_sorted_and_always_added() {
        assert_eq!(pkgs("htop/git"), vec!["cacert", "git", "htop", "iana-etc"]);
        assert_eq!(pkgs("git/htop"), pkgs("htop/git"));
        assert_eq!(pkgs("git/git"), vec!["cacert", "git", "iana-etc"]);
    }

    #[test]
    fn shell_meta_package_expands() {
        let p = pkgs("shell/git");
        for want in ["bashInteractive", "coreutils", "moreutils", "nano", "git"] {
            assert!(p.contains(&want.to_string()), "{want} missing from {p:?}");
        }
        assert!(ImageName::parse("shell").expect("valid").has_shell());
        assert!(!ImageName::parse("git").expect("valid").has_shell());
    }

    #[test]
    fn arm64_selects_architecture_and_is_not_a_package() {
        let n = ImageName::parse("arm64/git").expect("valid");
        assert_eq!(n.arch, Arch::Arm64);
        assert_eq!(n.arch.nix_system(), "aarch64-linux");
        assert!(!n.packages.contains("arm64"));
        assert_eq!(ImageName::parse("arm64"), Err(NameError::NoPackages));
    }

    #[test]
    fn zstd_prefix_selects_the_codec_and_is_a_package_elsewhere() {
        let z = ImageName::parse("zstd/shell/git").expect("valid");
        assert_eq!(z.codec, LayerCodec::Zstd);
        assert!(!z.packages.contains("zstd"));
        assert_eq!(
            z.packages,
            ImageName::parse("shell/git").expect("valid").packages
        );
        assert_eq!(
            ImageName::parse("git").expect("valid").codec,
            LayerCodec::Gzip
        );
        for tool in ["zstd", "shell/zstd", "zstd/zstd"] {
            assert!(pkgs(tool).contains(&"zstd".to_string()), "{tool}");
        }
        let both = ImageName::parse("zstd/arm64/git").expect("valid");
        assert_eq!((both.codec, both.arch), (LayerCodec::Zstd, Arch::Arm64));
        assert_eq!(ImageName::parse("zstd/arm64"), Err(NameError::NoPackages));
    }

    #[test]
    fn dotted_and_digit_names_are_kept_verbatim_for_nix() {
        assert!(pkgs("xorg.xev").contains(&"xorg.xev".to_string()));
        assert!(pkgs("7zz").contains(&"7zz".to_string()));
        assert!(pkgs("python3-packages.foo_bar").contains(&"python3-packages.foo_bar".to_string()));
    }

    #[test]
    fn malformed_names_are_rejected() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "/",
            "git/",
            "/git",
            "git//htop",
            "Git",
            "git htop",
            "..",
            "a/../b",
            "a..b",
            "git\";abort",
            "${x}",
            "a%2fb",
            "_git",
            "git_",
            "a___b",
            "a.-b",
            "a;b",
            "a$b",
            long.as_str(),
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(ImageName::parse(""), Err(NameError::Empty));
        assert!(matches!(
            ImageName::parse(&long),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn separators_follow_the_oci_grammar() {
        for good in [
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "x11-utils",
            "7zz",
            "a/b/c",
        ] {
            assert!(
                validate_repository(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    #[test]
    fn tags_and_commits() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("v1.2_3-x"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag(""));
        assert!(is_commit(&"0123456789abcdef".repeat(3)[..40]));
        assert!(!is_commit("latest"));
        assert!(!is_commit(&"A".repeat(40)));
    }
}
