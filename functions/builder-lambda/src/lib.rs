//! The builder Lambda's logic. Nix only evaluates package names to store paths (it cannot
//! build inside Lambda); the closure comes from a binary cache as signed NARs streamed into
//! layers, which go to S3 before their index entries go to DynamoDB. The registry holds the
//! build lease and passes it in the request; the builder releases it when done.

pub mod fault;

use nixery_aws::clients::Clients;
use nixery_aws::dynamo::DynamoIndex;
use nixery_aws::env::{self, ConfigError, EnvReader};
use nixery_aws::lambda::{BuildRequest, BuildResponse};
use nixery_aws::s3::S3BlobStore;
use nixery_core::binary_cache::{BinaryCache, BinaryCacheError};
use nixery_core::builder::{BuildContext, BuildSettings, NixBuilder};
use nixery_core::layers::{DEFAULT_LAYER_BUDGET, MAX_LAYER_BUDGET};
use nixery_core::name::{valid_tag, ImageName};
use nixery_core::nix::{Nix, NixError};
use nixery_core::source::PackageSource;
use nixery_core::storage::{BlobStore, Index};
use nixery_core::store_paths::CacheStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A package set baked into the image or mounted (optional; Terraform sets the channel or
/// repository instead). Tests use the offline set.
pub const PKGS_PATH: &str = "NIXERY_PKGS_PATH";
pub const DEFAULT_CACHE: &str = "https://cache.nixos.org";
pub const DEFAULT_KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
/// Seconds each Nix evaluation may take unless configured.
pub const DEFAULT_NIX_TIMEOUT_SECS: u64 = 300;

/// Where the package set comes from, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSetting {
    Path(PathBuf),
    Repo(String),
    Channel(String),
}

/// Everything the function reads from its environment (see `infra/contract.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub bucket: String,
    pub table: String,
    pub source: SourceSetting,
    pub cache_url: String,
    pub trusted_keys: Vec<String>,
    pub layer_budget: usize,
    pub nix_timeout: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(EnvReader::process())
    }

    /// Read the settings through `env` (tests pass fixed pairs, not the process environment).
    pub fn read(mut env: EnvReader) -> Result<Self, ConfigError> {
        let source = match (env.optional(PKGS_PATH), env.optional(env::PKGS_REPO)) {
            (Some(path), _) => SourceSetting::Path(path.into()),
            (None, Some(url)) => SourceSetting::Repo(url),
            (None, None) => SourceSetting::Channel(
                env.optional(env::CHANNEL)
                    .unwrap_or_else(|| env::DEFAULT_CHANNEL.into()),
            ),
        };
        let keys = env
            .optional(env::TRUSTED_KEYS)
            .unwrap_or_else(|| DEFAULT_KEY.into());
        let layer_budget = env.parse_or(env::LAYER_BUDGET, DEFAULT_LAYER_BUDGET);
        if !(1..=MAX_LAYER_BUDGET).contains(&layer_budget) {
            env.problem(format!(
                "{} must be between 1 and {MAX_LAYER_BUDGET}",
                env::LAYER_BUDGET
            ));
        }
        let settings = Settings {
            bucket: env.required(env::BUCKET),
            table: env.required(env::TABLE),
            source,
            cache_url: env
                .optional(env::BINARY_CACHE)
                .unwrap_or_else(|| DEFAULT_CACHE.into()),
            trusted_keys: keys.split_whitespace().map(str::to_string).collect(),
            layer_budget,
            nix_timeout: env.seconds(env::NIX_TIMEOUT, DEFAULT_NIX_TIMEOUT_SECS, 1),
        };
        env.finish()?;
        Ok(settings)
    }

    fn package_source(&self) -> Result<PackageSource, SetupError> {
        Ok(match &self.source {
            SourceSetting::Path(path) => {
                PackageSource::local(path).map_err(|source| SetupError::PackageSet {
                    path: path.clone(),
                    source,
                })?
            }
            SourceSetting::Repo(url) => PackageSource::Git { url: url.clone() },
            SourceSetting::Channel(name) => PackageSource::Channel(name.clone()),
        })
    }
}

/// Why the builder could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("reading the package set {}: {source}", path.display())]
    PackageSet {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("binary cache {url}: {source}")]
    Cache {
        url: String,
        source: BinaryCacheError,
    },
    #[error("creating {}: {source}", path.display())]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Nix(#[from] NixError),
}

/// The builder on the given clients; `work` is writable scratch space (under /tmp in Lambda).
pub fn builder(
    settings: &Settings,
    clients: &Clients,
    work: &Path,
) -> Result<NixBuilder, SetupError> {
    let s3 = S3BlobStore::new(clients.s3.clone(), &settings.bucket);
    let blobs: Arc<dyn BlobStore> = fault::wrap(Arc::new(s3));
    let index: Arc<dyn Index> =
        Arc::new(DynamoIndex::new(clients.dynamodb.clone(), &settings.table));
    let cache =
        BinaryCache::new(&settings.cache_url, &settings.trusted_keys).map_err(|source| {
            SetupError::Cache {
                url: settings.cache_url.clone(),
                source,
            }
        })?;
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&scratch).map_err(|source| SetupError::WorkDir {
        path: scratch.clone(),
        source,
    })?;
    Ok(NixBuilder::new(BuildContext {
        nix: Nix::new(&work.join("nix"), settings.nix_timeout)?,
        store: Arc::new(CacheStore::new(cache)),
        source: settings.package_source()?,
        blobs,
        index,
        scratch,
        settings: BuildSettings {
            layer_budget: settings.layer_budget,
            ..BuildSettings::default()
        },
    }))
}

/// One invocation: validate the request, build under the registry's lease, answer.
pub async fn handle(builder: &NixBuilder, req: BuildRequest) -> BuildResponse {
    let invalid = |message: String| BuildResponse::Failed {
        unavailable: false,
        message,
    };
    if !valid_tag(&req.tag) {
        return invalid(format!("invalid tag {:?}", req.tag));
    }
    let image = match ImageName::parse(&req.image) {
        Ok(image) => image,
        Err(e) => return invalid(e.to_string()),
    };
    tracing::info!(image = %image, tag = %req.tag, "build requested");
    let lease_ttl = Duration::from_secs(req.lease_ttl_secs);
    let result = builder
        .build_leased(
            &image,
            &req.tag,
            &req.alias_key,
            &req.lease_owner,
            lease_ttl,
        )
        .await;
    BuildResponse::from_result(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixery_aws::env::EnvReader;

    #[test]
    fn defaults_apply() {
        let s = Settings::read(EnvReader::from_pairs(&[
            ("NIXERY_BUCKET", "b"),
            ("NIXERY_TABLE", "t"),
        ]))
        .expect("valid");
        assert_eq!(
            s.source,
            SourceSetting::Channel(env::DEFAULT_CHANNEL.into())
        );
        assert_eq!(s.cache_url, DEFAULT_CACHE);
        assert_eq!(s.trusted_keys, vec![DEFAULT_KEY.to_string()]);
        assert_eq!(s.layer_budget, DEFAULT_LAYER_BUDGET);
        assert_eq!(s.nix_timeout, Duration::from_secs(DEFAULT_NIX_TIMEOUT_SECS));
    }

    #[test]
    fn source_precedence_and_keys() {
        let s = Settings::read(EnvReader::from_pairs(&[
            ("NIXERY_BUCKET", "b"),
            ("NIXERY_TABLE", "t"),
            ("NIXERY_PKGS_REPO", "https://example.org/pkgs.git"),
            ("NIXERY_CHANNEL", "nixos-24.05"),
            ("NIXERY_TRUSTED_KEYS", "a:x  b:y"),
        ]))
        .expect("valid");
        assert_eq!(
            s.source,
            SourceSetting::Repo("https://example.org/pkgs.git".into())
        );
        assert_eq!(s.trusted_keys, vec!["a:x", "b:y"]);
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Settings::read(EnvReader::from_pairs(&[
            ("NIXERY_LAYER_BUDGET", "500"),
            ("NIXERY_NIX_TIMEOUT", "soon"),
        ]))
        .expect_err("invalid")
        .to_string();
        for part in [
            "NIXERY_BUCKET must be set",
            "NIXERY_TABLE must be set",
            "NIXERY_LAYER_BUDGET must be between 1 and 124",
            "NIXERY_NIX_TIMEOUT=\"soon\"",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }
}
