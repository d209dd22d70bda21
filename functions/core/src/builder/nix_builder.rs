//! `NixBuilder`: runs the build steps itself, with Nix evaluating names and store paths from
//! the local Nix store or a binary cache, behind the storage traits. `nixery serve` uses it
//! in-process; the builder Lambda runs it for the registry Lambda.
//!
//! A request is looked up by its alias (the source as configured, the tag where it selects a
//! git ref, arch and packages). A fresh alias answers at once. Otherwise, under a build lease
//! on the alias, the source is pinned (a channel or branch to its current commit), the image
//! is looked up under its manifest key (the pin, arch and packages) and built only if it is
//! not there, and the alias is pointed at it.

use super::{alias_key, manifest_key, steps, BuildError, BuildGate, Builder, InFlight, OpenGate};
use crate::events;
use crate::layers::Popularity;
use crate::memo::Memo;
use crate::name::ImageName;
use crate::nix::Nix;
use crate::source::PackageSource;
use crate::storage::{now_ms, AliasEntry, BlobStore, Index, ManifestEntry};
use crate::store_paths::StorePaths;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a build lease lasts before another builder may take the build over.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a moving source (a channel, a git branch) stays pinned before it is resolved
/// again: a new commit reaches clients within this time.
pub const DEFAULT_PIN_TTL: Duration = Duration::from_secs(5 * 60);
/// How often a builder waiting for another's build looks for its result.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// Aliases remembered in memory; a few hundred bytes each.
const MEMO_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Layers for store paths (the customisation layer comes on top).
    pub layer_budget: usize,
    pub popularity: Popularity,
    /// How long a build lease lasts before another builder may take over.
    pub lease_ttl: Duration,
    /// How long a moving source's pin is trusted before it is resolved again.
    pub pin_ttl: Duration,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            layer_budget: crate::layers::DEFAULT_LAYER_BUDGET,
            popularity: Popularity::default(),
            lease_ttl: DEFAULT_LEASE_TTL,
            pin_ttl: DEFAULT_PIN_TTL,
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

impl BuildContext {
    /// Whether an alias may still be served: a fixed source never moves; a moving one is
    /// resolved again after the pin TTL.
    pub fn is_fresh(&self, tag: &str, alias: &AliasEntry) -> bool {
        let ttl = self.settings.pin_ttl.as_millis() as u64;
        self.source.fixed_pin(tag).is_some() || now_ms() < alias.resolved_ms.saturating_add(ttl)
    }
}

pub struct NixBuilder {
    ctx: Arc<BuildContext>,
    inflight: InFlight<ManifestEntry, BuildError>,
    /// This process's name on build leases.
    owner: String,
    /// Aliases seen, so warm pulls skip the index; checked for freshness on every use.
    memo: Memo<String, AliasEntry>,
}

impl NixBuilder {
    pub fn new(ctx: BuildContext) -> Self {
        NixBuilder {
            ctx: Arc::new(ctx),
            inflight: InFlight::default(),
            owner: format!("local-{}-{}", std::process::id(), now_ms()),
            memo: Memo::new(MEMO_CAPACITY),
        }
    }

    pub fn source(&self) -> &PackageSource {
        &self.ctx.source
    }

    /// How this builder calls Nix.
    pub fn nix(&self) -> &Nix {
        &self.ctx.nix
    }

    /// Build for a caller that already holds the lease on `alias_key` as `lease_owner` (the
    /// registry Lambda): the lease is renewed for `lease_ttl` while the build runs and given
    /// back when done, failed or not.
    pub async fn build_leased(
        &self,
        image: &ImageName,
        tag: &str,
        alias_key: &str,
        lease_owner: &str,
        lease_ttl: Duration,
    ) -> Result<ManifestEntry, BuildError> {
        self.ctx
            .index
            .acquire_lease(alias_key, lease_owner, lease_ttl)
            .await?;
        let gate: Arc<dyn BuildGate> = Arc::new(OpenGate);
        resolve_and_release(&self.ctx, image, tag, alias_key, lease_owner, gate).await
    }

    /// The alias's manifest if it is fresh and its blobs are there.
    async fn fresh(&self, key: &str, tag: &str) -> Result<Option<ManifestEntry>, BuildError> {
        let key = key.to_string();
        if let Some(alias) = self.memo.get(&key).filter(|a| self.ctx.is_fresh(tag, a)) {
            return Ok(Some(alias.manifest));
        }
        let Some(alias) = fresh_alias(&self.ctx, &key, tag).await? else {
            return Ok(None);
        };
        self.memo.put(&key, &alias);
        Ok(Some(alias.manifest))
    }
}

#[async_trait]
impl Builder for NixBuilder {
    async fn manifest(
        &self,
        image: &ImageName,
        tag: &str,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        self.manifest_gated(image, tag, Arc::new(OpenGate)).await
    }

    async fn manifest_gated(
        &self,
        image: &ImageName,
        tag: &str,
        gate: Arc<dyn BuildGate>,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        let key = alias_key(&self.ctx.source.identity(tag), image);
        if let Some(entry) = self.fresh(&key, tag).await.map_err(Arc::new)? {
            return Ok(entry);
        }
        let (ctx, image, tag, owner) = (
            self.ctx.clone(),
            image.clone(),
            tag.to_string(),
            self.owner.clone(),
        );
        let build_key = key.clone();
        self.inflight
            .run(&key, move || async move {
                leased_build(ctx, build_key, owner, image, tag, gate).await
            })
            .await
    }
}

/// A fresh alias whose manifests are still stored.
async fn fresh_alias(
    ctx: &BuildContext,
    key: &str,
    tag: &str,
) -> Result<Option<AliasEntry>, BuildError> {
    let Some(alias) = ctx.index.get_alias(key).await? else {
        return Ok(None);
    };
    if !ctx.is_fresh(tag, &alias) || !steps::manifest_stored(ctx, &alias.manifest).await? {
        return Ok(None);
    }
    Ok(Some(alias))
}

/// Resolve and build under the alias's lease, so that builders in other processes sharing
/// this storage wait for this one instead of repeating it.
async fn leased_build(
    ctx: Arc<BuildContext>,
    key: String,
    owner: String,
    image: ImageName,
    tag: String,
    gate: Arc<dyn BuildGate>,
) -> Result<ManifestEntry, BuildError> {
    let deadline = Instant::now() + ctx.settings.lease_ttl;
    while !ctx
        .index
        .acquire_lease(&key, &owner, ctx.settings.lease_ttl)
        .await?
    {
        if let Some(alias) = fresh_alias(&ctx, &key, &tag).await? {
            return Ok(alias.manifest);
        }
        if Instant::now() > deadline {
            return Err(BuildError::LeaseTimeout(ctx.settings.lease_ttl.as_secs()));
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
    resolve_and_release(&ctx, &image, &tag, &key, &owner, gate).await
}

/// While holding the lease `(alias_key, owner)`: pin the source, reuse or build the image,
/// point the alias at it, and release the lease whatever happened.
async fn resolve_and_release(
    ctx: &Arc<BuildContext>,
    image: &ImageName,
    tag: &str,
    alias_key: &str,
    owner: &str,
    gate: Arc<dyn BuildGate>,
) -> Result<ManifestEntry, BuildError> {
    let started = Instant::now();
    let result = resolve_and_build(ctx, image, tag, alias_key, gate.as_ref()).await;
    let released = ctx.index.release_lease(alias_key, owner).await;
    log_result(image, &result, started);
    let entry = result?;
    released?;
    Ok(entry)
}

async fn resolve_and_build(
    ctx: &Arc<BuildContext>,
    image: &ImageName,
    tag: &str,
    alias_key: &str,
    gate: &dyn BuildGate,
) -> Result<ManifestEntry, BuildError> {
    let pinned = ctx.source.pin(tag, &ctx.nix).await?;
    let manifest_key = manifest_key(&pinned.id, image);
    let manifest = match steps::cached_manifest(ctx, &manifest_key).await? {
        Some(entry) => entry,
        None => {
            gate.admit().await?;
            let entry = steps::build_image(ctx, image, &pinned).await?;
            ctx.index.put_manifest(&manifest_key, &entry).await?;
            tracing::info!(image = %image, manifest = %entry.docker.digest, "{}", events::IMAGE_BUILT);
            entry
        }
    };
    let alias = AliasEntry {
        manifest: manifest.clone(),
        manifest_key,
        resolved_ms: now_ms(),
    };
    ctx.index.put_alias(alias_key, &alias).await?;
    Ok(manifest)
}

fn log_result(image: &ImageName, result: &Result<ManifestEntry, BuildError>, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(e) => {
            tracing::info!(image = %image, manifest = %e.docker.digest, elapsed_ms, "image ready")
        }
        Err(e) => tracing::warn!(image = %image, error = %e, "image build failed"),
    }
}
