//! Environment variable names shared with the Terraform in `infra/` (see
//! `infra/contract.json`; `infra/tests/test_agreement.py` checks both agree).

/// S3 bucket holding every blob (both functions).
pub const BUCKET: &str = "NIXERY_BUCKET";
/// DynamoDB table holding the index (both functions).
pub const TABLE: &str = "NIXERY_TABLE";
/// Name of the builder Lambda the registry invokes.
pub const BUILDER_FUNCTION: &str = "NIXERY_BUILDER_FUNCTION";
/// Seconds a manifest request waits for a build before answering 429.
pub const BUILD_WAIT: &str = "NIXERY_BUILD_WAIT";
/// Seconds a presigned blob URL stays valid.
pub const PRESIGN_TTL: &str = "NIXERY_PRESIGN_TTL";
/// nixpkgs channel of the builder (when no repository is set).
pub const CHANNEL: &str = "NIXERY_CHANNEL";
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

/// Read a variable, with a default; an unparsable value is an error naming it.
pub fn parse_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| format!("{name}={v:?} is not valid")),
        _ => Ok(default),
    }
}

/// A required variable.
pub fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} must be set"))
}
