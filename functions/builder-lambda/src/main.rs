//! The builder Lambda. Nix only evaluates package names to store paths (it
//! cannot build inside Lambda); the closure comes from a binary cache as
//! signed NARs streamed into layers, which go to S3 before their index
//! entries go to DynamoDB. The registry holds the build lease and passes it
//! in the request; the builder releases it when done.

mod fault;

use anyhow::{Context, Result};
use lambda_runtime::{service_fn, LambdaEvent};
use nixery_aws::env;
use nixery_aws::lambda::{BuildRequest, BuildResponse};
use nixery_core::binary_cache::BinaryCache;
use nixery_core::build::store::CacheStore;
use nixery_core::build::{BuildError, BuildSettings, LocalBuilder};
use nixery_core::name::{valid_tag, ImageName};
use nixery_core::nix::Nix;
use nixery_core::source::PackageSource;
use nixery_core::storage::{BlobStore, Index};
use std::sync::Arc;
use std::time::Duration;

/// A package set baked into the image or mounted (optional; Terraform sets
/// the channel or repository instead). Tests use the offline set.
const PKGS_PATH: &str = "NIXERY_PKGS_PATH";
const DEFAULT_CACHE: &str = "https://cache.nixos.org";
const DEFAULT_KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

fn source() -> Result<PackageSource> {
    if let Ok(path) = std::env::var(PKGS_PATH) {
        return PackageSource::local(path.as_ref()).with_context(|| format!("{PKGS_PATH}={path}"));
    }
    if let Ok(url) = env::required(env::PKGS_REPO) {
        return Ok(PackageSource::Git { url });
    }
    Ok(PackageSource::Channel(
        env::parse_or(env::CHANNEL, "nixos-unstable".to_string()).map_err(anyhow::Error::msg)?,
    ))
}

async fn builder() -> Result<LocalBuilder> {
    let bucket = env::required(env::BUCKET).map_err(anyhow::Error::msg)?;
    let table = env::required(env::TABLE).map_err(anyhow::Error::msg)?;
    let cache_url =
        env::parse_or(env::BINARY_CACHE, DEFAULT_CACHE.to_string()).map_err(anyhow::Error::msg)?;
    let keys =
        env::parse_or(env::TRUSTED_KEYS, DEFAULT_KEY.to_string()).map_err(anyhow::Error::msg)?;
    let keys: Vec<&str> = keys.split_whitespace().collect();
    let budget = env::parse_or(env::LAYER_BUDGET, 94usize).map_err(anyhow::Error::msg)?;
    let nix_timeout = env::parse_or(env::NIX_TIMEOUT, 300u64).map_err(anyhow::Error::msg)?;

    let config = nixery_aws::clients::sdk_config().await;
    let s3 = nixery_aws::s3::S3BlobStore::new(
        nixery_aws::clients::s3(&config),
        bucket,
        Duration::from_secs(300),
    );
    let blobs: Arc<dyn BlobStore> = fault::wrap(Arc::new(s3));
    let index: Arc<dyn Index> = Arc::new(nixery_aws::dynamo::DynamoIndex::new(
        nixery_aws::clients::dynamodb(&config),
        table,
    ));
    let cache =
        BinaryCache::new(&cache_url, &keys).with_context(|| format!("binary cache {cache_url}"))?;
    // Lambda's only writable place is /tmp (TMPDIR elsewhere).
    let work = std::env::temp_dir().join("nixery");
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let nix = Nix::new(&work.join("nix"), Duration::from_secs(nix_timeout))?;
    let settings = BuildSettings {
        layer_budget: budget,
        ..BuildSettings::default()
    };
    Ok(LocalBuilder::new(
        nix,
        Arc::new(CacheStore::new(cache)),
        source()?,
        blobs,
        index,
        scratch,
        settings,
    ))
}

async fn handle(
    builder: &LocalBuilder,
    event: LambdaEvent<BuildRequest>,
) -> Result<BuildResponse, lambda_runtime::Error> {
    let req = event.payload;
    let image = match ImageName::parse(&req.image) {
        Ok(i) if valid_tag(&req.tag) => i,
        Ok(_) => {
            return Ok(BuildResponse::Failed {
                message: format!("invalid tag {:?}", req.tag),
            })
        }
        Err(e) => {
            return Ok(BuildResponse::Failed {
                message: e.to_string(),
            })
        }
    };
    tracing::info!(image = %image, tag = %req.tag, "build requested");
    Ok(
        match builder
            .build_leased(&image, &req.tag, &req.cache_key, &req.lease_owner)
            .await
        {
            Ok(manifest) => BuildResponse::Built { manifest },
            Err(BuildError::UnknownPackages {
                missing,
                source_desc,
            }) => {
                let message = format!(
                    "packages not found in {source_desc}: {}",
                    missing.join(", ")
                );
                BuildResponse::UnknownPackages { missing, message }
            }
            Err(e) => BuildResponse::Failed {
                message: format!("image build failed: {e}"),
            },
        },
    )
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .init();
    let builder = Arc::new(builder().await?);
    tracing::info!(source = %builder.source().describe(), "builder ready");
    lambda_runtime::run(service_fn(|event| {
        let builder = builder.clone();
        async move { handle(&builder, event).await }
    }))
    .await
}
