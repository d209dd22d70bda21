//! The local builder: Nix on this machine, the cache index and blob store
//! behind the traits.

use super::store::StorePaths;
use super::{steps, BuildError, Builder, InFlight};
use crate::layers::Popularity;
use crate::name::ImageName;
use crate::nix::Nix;
use crate::pack::Compression;
use crate::source::PackageSource;
use crate::storage::{BlobStore, Index, ManifestEntry};
use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl From<String> for BuildError {
    fn from(s: String) -> Self {
        BuildError::Task(s)
    }
}

#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Layers for store paths (the customisation layer comes on top).
    pub layer_budget: usize,
    pub popularity: Popularity,
    pub compression: Compression,
    /// How long a build lease lasts before another builder may take over.
    pub lease_ttl: Duration,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            layer_budget: crate::layers::DEFAULT_LAYER_BUDGET,
            popularity: Popularity::default(),
            compression: Compression::default(),
            lease_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// Everything a build needs; shared by the concurrent builds.
pub(super) struct Context {
    pub nix: Nix,
    pub store: Arc<dyn StorePaths>,
    pub source: PackageSource,
    pub blobs: Arc<dyn BlobStore>,
    pub index: Arc<dyn Index>,
    pub scratch: PathBuf,
    pub settings: BuildSettings,
}

pub struct LocalBuilder {
    ctx: Arc<Context>,
    inflight: InFlight<ManifestEntry, BuildError>,
    owner: String,
    /// Pinned manifests already seen: immutable, so warm pulls skip the index.
    memo: crate::memo::Memo<String, ManifestEntry>,
}

impl LocalBuilder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        nix: Nix,
        store: Arc<dyn StorePaths>,
        source: PackageSource,
        blobs: Arc<dyn BlobStore>,
        index: Arc<dyn Index>,
        scratch: PathBuf,
        settings: BuildSettings,
    ) -> Self {
        let owner = format!("local-{}-{}", std::process::id(), unique_suffix());
        let ctx = Arc::new(Context {
            nix,
            store,
            source,
            blobs,
            index,
            scratch,
            settings,
        });
        LocalBuilder {
            ctx,
            inflight: InFlight::default(),
            owner,
            memo: crate::memo::Memo::new(4096),
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
        let started = Instant::now();
        let result = steps::build_image(&self.ctx, image, tag).await;
        if let (Ok(entry), Some(_)) = (&result, self.ctx.source.pin(tag)) {
            self.ctx.index.put_manifest(cache_key, entry).await?;
        }
        self.ctx.index.release_lease(cache_key, lease_owner).await?;
        log_result(image, &result, started);
        result
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The index key of an image: what it is built from, not what it is called.
pub fn manifest_key(source_id: &str, image: &ImageName) -> String {
    let mut h = Sha256::new();
    h.update(super::LAYER_FORMAT);
    h.update([0]);
    h.update(source_id);
    h.update([0]);
    h.update(image.arch.nix_system());
    for p in &image.packages {
        h.update([0]);
        h.update(p);
    }
    format!("manifest-{}", hex::encode(h.finalize()))
}

#[async_trait]
impl Builder for LocalBuilder {
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
    ctx: Arc<Context>,
    key: String,
    owner: String,
    image: ImageName,
    tag: String,
    cache: bool,
) -> Result<ManifestEntry, BuildError> {
    let started = Instant::now();
    let deadline = started + ctx.settings.lease_ttl;
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
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let result = steps::build_image(&ctx, &image, &tag).await;
    if let (Ok(entry), true) = (&result, cache) {
        ctx.index.put_manifest(&key, entry).await?;
    }
    ctx.index.release_lease(&key, &owner).await?;
    log_result(&image, &result, started);
    result
}

fn log_result(image: &ImageName, result: &Result<ManifestEntry, BuildError>, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(e) => {
            tracing::info!(image = %image, manifest = %e.docker.digest, elapsed_ms, "image built")
        }
        Err(e) => tracing::warn!(image = %image, error = %e, "image build failed"),
    }
}
