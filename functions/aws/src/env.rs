//! Environment variable names shared with the Terraform in `infra/` (see
//! `infra/contract.json`; `infra/tests/test_agreement.py` checks both agree), and a reader
//! that reports every problem of a function's environment at once.

use std::time::Duration;

/// S3 bucket holding every blob (both functions).
pub const BUCKET: &str = "NIXERY_BUCKET";
/// DynamoDB table holding the index (both functions).
pub const TABLE: &str = "NIXERY_TABLE";
/// DynamoDB table holding tenants and usage (registry).
pub const ACCOUNTS_TABLE: &str = "NIXERY_ACCOUNTS_TABLE";
/// Name of the builder Lambda the registry invokes.
pub const BUILDER_FUNCTION: &str = "NIXERY_BUILDER_FUNCTION";
/// Seconds a manifest request waits for a build before answering 429.
pub const BUILD_WAIT: &str = "NIXERY_BUILD_WAIT";
/// Seconds a presigned blob URL stays valid.
pub const PRESIGN_TTL: &str = "NIXERY_PRESIGN_TTL";
/// "true" to require credentials (registry).
pub const AUTH: &str = "NIXERY_AUTH";
/// The absolute base URL clients use, for the token realm (registry).
pub const PUBLIC_URL: &str = "NIXERY_PUBLIC_URL";
/// SSM parameter holding the token signing secrets (registry).
pub const SIGNING_KEY_PARAMETER: &str = "NIXERY_SIGNING_KEY_PARAMETER";
/// Seconds a registry token stays valid (registry).
pub const TOKEN_TTL: &str = "NIXERY_TOKEN_TTL";
/// Seconds between re-resolutions of a moving package source to a commit.
pub const PIN_TTL: &str = "NIXERY_PIN_TTL";
/// nixpkgs channel (a name or a URL), when no repository is set.
pub const CHANNEL: &str = "NIXERY_CHANNEL";
/// The channel when neither `CHANNEL` nor `PKGS_REPO` is set (both functions).
pub const DEFAULT_CHANNEL: &str = "nixos-unstable";
/// Git repository of the package set.
pub const PKGS_REPO: &str = "NIXERY_PKGS_REPO";
/// Binary cache the builder fetches store paths from.
pub const BINARY_CACHE: &str = "NIXERY_BINARY_CACHE";
/// Space-separated `name:base64` public keys the cache must be signed with.
pub const TRUSTED_KEYS: &str = "NIXERY_TRUSTED_KEYS";
/// Store-path layers per image.
pub const LAYER_BUDGET: &str = "NIXERY_LAYER_BUDGET";
/// Seconds each Nix evaluation may take.
pub const NIX_TIMEOUT: &str = "NIXERY_NIX_TIMEOUT";

/// The environment is incomplete or malformed; lists every problem at once.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

type Lookup = Box<dyn Fn(&str) -> Option<String>>;

/// Reads settings through a lookup function (the process environment in `main`, a map in
/// tests), collecting problems instead of stopping at the first.
pub struct EnvReader {
    get: Lookup,
    problems: Vec<String>,
}

impl EnvReader {
    /// A reader of the process environment.
    pub fn process() -> Self {
        EnvReader::new(Box::new(|name| std::env::var(name).ok()))
    }

    /// A reader of fixed name/value pairs (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvReader::new(Box::new(move |name| map.get(name).cloned()))
    }

    pub fn new(get: Lookup) -> Self {
        EnvReader {
            get,
            problems: Vec::new(),
        }
    }

    /// A set, non-blank value.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&mut self, name: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} must be set"));
            String::new()
        })
    }

    /// A value parsed as `T`, or `default` when unset.
    pub fn parse_or<T: std::str::FromStr>(&mut self, name: &str, default: T) -> T {
        match self.optional(name) {
            None => default,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                self.problems.push(format!("{name}={v:?} is not valid"));
                default
            }),
        }
    }

    /// Whole seconds, at least `min`.
    pub fn seconds(&mut self, name: &str, default: u64, min: u64) -> Duration {
        match self.optional(name) {
            None => Duration::from_secs(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= min => Duration::from_secs(n),
                _ => {
                    let what = format!("a whole number of seconds, at least {min}");
                    self.problems.push(format!("{name}={v:?} is not {what}"));
                    Duration::from_secs(default)
                }
            },
        }
    }

    /// "true" or "false" (case-insensitive).
    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.optional(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                self.problems
                    .push(format!("{name}={v:?} is neither true nor false"));
                default
            }
        }
    }

    /// Record a problem found by the caller.
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// Every problem seen, or Ok.
    pub fn finish(self) -> Result<(), ConfigError> {
        match self.problems.is_empty() {
            true => Ok(()),
            false => Err(ConfigError(self.problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_defaults_and_problems() {
        let mut r = EnvReader::from_pairs(&[("A", "5"), ("B", " "), ("C", "x"), ("D", "TRUE")]);
        assert_eq!(r.seconds("A", 1, 1), Duration::from_secs(5));
        assert_eq!(r.seconds("B", 7, 1), Duration::from_secs(7));
        assert!(r.flag("D", false));
        assert_eq!(r.parse_or("C", 3usize), 3);
        assert_eq!(r.required("MISSING"), "");
        let err = r.finish().expect_err("two problems").to_string();
        assert!(
            err.contains("C=\"x\"") && err.contains("MISSING must be set"),
            "{err}"
        );
    }
}
