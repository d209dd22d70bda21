//! `NixBuilder`: runs the build steps itself, with Nix evaluating names and store paths from
//! the local Nix store or a binary cache, behind the storage traits. `nixery serve` uses it
//! in-process; the builder Lambda runs it for the registry Lambda.

use super::{manifest_key, steps, BuildError, Builder, InFlight};
use crate::events;
use crate::layers::Popularity;
use crate::memo::Memo;
use crate::name::ImageName;
use crate::nix::Nix;
use crate::source::PackageSource;
use crate::storage::{BlobStore, Index, ManifestEntry};
use crate::store_paths::StorePaths;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a build lease lasts before another builder may take the build over.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15 * 60);
/// How often a builder waiting for another's build looks for its result.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// Pinned manifests remembered in memory; a few hundred bytes each.
const MEMO_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Layers for store paths (the customisation layer comes on top).
    pub layer_budget: usize,
    pub popularity: Popularity,
    /// How long a build lease lasts before another builder may take over.
    pub lease_ttl: Duration,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            layer_budget: crate::layers::DEFAULT_LAYER_BUDGET,
            popularity: Popularity::default(),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

/// Everything a build needs; shared by the concurrent builds.
pub struct BuildContext {
    pub nix: Nix,
    pub store: Arc<dyn StorePaths>,
    pub source: PackageSource,
    pub blobs: Arc<dyn BlobStore>,
    pub index: Arc<dyn Index>,
    /// Where layers are packed before they are stored (on the blob store's filesystem
    /// locally, so that storing is a rename).
    pub scratch: PathBuf,
    pub settings: BuildSettings,
}

pub struct NixBuilder {
    ctx: Arc<BuildContext>,
    inflight: InFlight<ManifestEntry, BuildError>,
    /// This process's name on build leases.
    owner: String,
    /// Pinned manifests already seen: immutable, so warm pulls skip the index.
    memo: Memo<String, ManifestEntry>,
}

impl NixBuilder {
    pub fn new(ctx: BuildContext) -> Self {
        NixBuilder {
            ctx: Arc::new(ctx),
            inflight: InFlight::default(),
            owner: format!("local-{}-{}", std::process::id(), crate::storage::now_ms()),
            memo: Memo::new(MEMO_CAPACITY),
        }
    }

    pub fn source(&self) -> &PackageSource {
        &self.ctx.source
    }

    /// Build for a caller that already holds the lease `(cache_key, lease_owner)`
    /// (the registry Lambda): cache the manifest under `cache_key` when the
    /// source is pinned, and give the lease back when done, failed or not.
    pub async fn build_leased(
        &self,
        image: &ImageName,
        tag: &str,
        cache_key: &str,
        lease_owner: &str,
    ) -> Result<ManifestEntry, BuildError> {
        let cache = self.ctx.source.pin(tag).is_some();
        build_and_release(&self.ctx, image, tag, cache_key, lease_owner, cache).await
    }
}

#[async_trait]
impl Builder for NixBuilder {
    async fn manifest(
        &self,
        image: &ImageName,
        tag: &str,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        let pin = self.ctx.source.pin(tag);
        let source_id = pin
            .clone()
            .unwrap_or_else(|| self.ctx.source.to_json(tag).to_string());
        let key = manifest_key(&source_id, image);
        if pin.is_some() {
            if let Some(entry) = self.memo.get(&key) {
                return Ok(entry);
            }
            if let Some(entry) = steps::cached_manifest(&self.ctx, &key)
                .await
                .map_err(Arc::new)?
            {
                tracing::debug!(image = %image, manifest = %entry.docker.digest, "manifest cache hit");
                self.memo.put(&key, &entry);
                return Ok(entry);
            }
        }
        let (ctx, image, tag, owner) = (
            self.ctx.clone(),
            image.clone(),
            tag.to_string(),
            self.owner.clone(),
        );
        let cache = pin.is_some();
        let build_key = key.clone();
        self.inflight
            .run(&key, move || async move {
                leased_build(ctx, build_key, owner, image, tag, cache).await
            })
            .await
    }
}

/// Build under the index lease, so that builders in other processes sharing
/// this storage wait for this one instead of repeating it.
async fn leased_build(
    ctx: Arc<BuildContext>,
    key: String,
    owner: String,
    image: ImageName,
    tag: String,
    cache: bool,
) -> Result<ManifestEntry, BuildError> {
    let deadline = Instant::now() + ctx.settings.lease_ttl;
    while !ctx
        .index
        .acquire_lease(&key, &owner, ctx.settings.lease_ttl)
        .await?
    {
        if cache {
            if let Some(entry) = steps::cached_manifest(&ctx, &key).await? {
                return Ok(entry);
            }
        }
        if Instant::now() > deadline {
            return Err(BuildError::LeaseTimeout(ctx.settings.lease_ttl.as_secs()));
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
    build_and_release(&ctx, &image, &tag, &key, &owner, cache).await
}

/// Build while holding the lease `(key, owner)`; cache the manifest if asked, and release
/// the lease whatever happened.
async fn build_and_release(
    ctx: &Arc<BuildContext>,
    image: &ImageName,
    tag: &str,
    key: &str,
    owner: &str,
    cache: bool,
) -> Result<ManifestEntry, BuildError> {
    let started = Instant::now();
    let result = steps::build_image(ctx, image, tag).await;
    let cached = match (&result, cache) {
        (Ok(entry), true) => ctx.index.put_manifest(key, entry).await.map(drop),
        _ => Ok(()),
    };
    let released = ctx.index.release_lease(key, owner).await;
    log_result(image, &result, started);
    let entry = result?;
    cached?;
    released?;
    Ok(entry)
}

fn log_result(image: &ImageName, result: &Result<ManifestEntry, BuildError>, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(e) => {
            tracing::info!(image = %image, manifest = %e.docker.digest, elapsed_ms, "{}", events::IMAGE_BUILT)
        }
        Err(e) => tracing::warn!(image = %image, error = %e, "image build failed"),
    }
}
