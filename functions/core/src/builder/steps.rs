//! The steps of one image build, each logged with its duration.

use super::nix_builder::BuildContext as Context;
use super::{compression, layer_key, BuildError};
use crate::customisation::{customisation_entries, Tree};
use crate::events;
use crate::graph::ClosureGraph;
use crate::image::{image_docs_with_codec, LayerDesc};
use crate::layers::{group_layers, GroupingOptions, LayerGroup};
use crate::name::{ImageName, LayerCodec};
use crate::pack::{pack_entries, PackError};
use crate::source::Pinned;
use crate::storage::{put_image_docs, LayerEntry, ManifestEntry, StorageError};
use crate::store_paths::LayerOut;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use tempfile::TempPath;

/// Layers packed at once: one per core (at least 2, so a fetch waiting on the network
/// overlaps another layer's work), each also handing gzip chunks to its compression threads.
fn pack_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// A cached manifest, if its blobs are still there.
pub(super) async fn cached_manifest(
    ctx: &Context,
    key: &str,
) -> Result<Option<ManifestEntry>, BuildError> {
    let Some(entry) = ctx.index.get_manifest(key).await? else {
        return Ok(None);
    };
    Ok(manifest_stored(ctx, &entry).await?.then_some(entry))
}

/// Whether both manifests of an image are in the blob store.
pub(super) async fn manifest_stored(
    ctx: &Context,
    entry: &ManifestEntry,
) -> Result<bool, BuildError> {
    Ok(ctx.blobs.size(&entry.docker.digest).await?.is_some()
        && ctx.blobs.size(&entry.oci.digest).await?.is_some())
}

pub(super) async fn build_image(
    ctx: &Arc<Context>,
    image: &ImageName,
    pinned: &Pinned,
) -> Result<ManifestEntry, BuildError> {
    let request = json!({
        "source": pinned.nix,
        "system": image.arch.nix_system(),
        "packages": image.packages,
    });
    let t = Instant::now();
    let resolution = ctx.nix.resolve(&request).await?;
    if !resolution.missing.is_empty() {
        return Err(BuildError::UnknownPackages {
            missing: resolution.missing,
            source_desc: ctx.source.describe(),
        });
    }
    step(image, "resolve", t);
    let t = Instant::now();
    let mut roots = ctx
        .store
        .realise(&ctx.nix, &request, &resolution.found)
        .await?;
    roots.sort();
    roots.dedup();
    step(image, "realise", t);
    let t = Instant::now();
    let graph = ctx.store.closure(&ctx.nix, &roots).await?;
    step(image, "closure", t);
    let t = Instant::now();
    let groups = group(ctx, &graph).await?;
    tracing::info!(image = %image, paths = graph.paths.len(), layers = groups.len(), "grouped closure");
    step(image, "group", t);
    let t = Instant::now();
    // Requested packages in sorted name order, so that conflicts resolve the same way every time.
    let outs: Vec<String> = resolution.found.values().cloned().collect();
    let wanted: BTreeSet<String> = outs.iter().cloned().collect();
    let (mut layers, trees) = store_layers(ctx, groups, image.codec, &wanted).await?;
    step(image, "store layers", t);
    let t = Instant::now();
    let outs = outs.into_iter().filter(|p| graph.paths.contains_key(p));
    let listed = listings(ctx, outs, trees).await?;
    layers.push(customisation_layer(ctx, listed, image.codec).await?);
    step(image, "customisation layer", t);
    let t = Instant::now();
    let entry = write_docs(ctx, image, &layers).await?;
    step(image, "manifest", t);
    Ok(entry)
}

/// The closure's layer groups. Registry-aware: layers already stored that fit this closure
/// are reused as they are.
async fn group(ctx: &Context, graph: &ClosureGraph) -> Result<Vec<LayerGroup>, BuildError> {
    let opts = GroupingOptions {
        budget: ctx.settings.layer_budget,
    };
    let closure: BTreeSet<String> = graph.paths.keys().cloned().collect();
    let known: Vec<LayerGroup> = ctx
        .index
        .layers_within(&closure)
        .await?
        .into_iter()
        .map(|e| LayerGroup {
            contents: e.contents,
        })
        .collect();
    Ok(group_layers(graph, &ctx.settings.popularity, &known, &opts))
}

fn step(image: &ImageName, name: &str, since: Instant) {
    let elapsed_ms = since.elapsed().as_millis() as u64;
    tracing::info!(image = %image, step = name, elapsed_ms, "{}", events::BUILD_STEP);
}

/// Store paths' listings, taken while packing (for the customisation layer).
type Trees = BTreeMap<String, Tree>;

/// The listings of `outs`, in order: those taken while their layer was packed, the others
/// (in layers reused from the index) read from the store.
async fn listings(
    ctx: &Context,
    outs: impl Iterator<Item = String>,
    trees: Trees,
) -> Result<Vec<(String, Tree)>, BuildError> {
    let mut listed = Vec::new();
    for out in outs {
        let tree = match trees.get(&out) {
            Some(tree) => tree.clone(),
            None => ctx.store.tree(&out).await?,
        };
        listed.push((out, tree));
    }
    Ok(listed)
}

/// A layer and the listings taken while packing it.
type Packed = (LayerDesc, Vec<(String, Tree)>);

/// Reuse the layers the index has and pack the rest, in group order; the listings of the
/// `wanted` store paths among those packed come back too.
async fn store_layers(
    ctx: &Arc<Context>,
    groups: Vec<LayerGroup>,
    codec: LayerCodec,
    wanted: &BTreeSet<String>,
) -> Result<(Vec<LayerDesc>, Trees), BuildError> {
    let keys: Vec<String> = groups.iter().map(|g| layer_key(g, codec)).collect();
    let known = ctx.index.get_layers(&keys).await?;
    let jobs = groups
        .into_iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (group, key))| {
            let hit = known.get(&key).cloned();
            let ctx = ctx.clone();
            let list: BTreeSet<String> = group
                .contents
                .iter()
                .filter(|p| wanted.contains(*p))
                .cloned()
                .collect();
            async move {
                let done = match hit {
                    Some(layer) if ctx.blobs.size(&layer.digest).await?.is_some() => {
                        let paths = group.contents.len();
                        tracing::info!(digest = %layer.digest, paths, "{}", events::LAYER_REUSED);
                        (layer, Vec::new())
                    }
                    _ => pack_store_layer(&ctx, key, group, codec, list).await?,
                };
                Ok::<_, BuildError>((i, done))
            }
        });
    // Unordered: in order, a finished layer would hold its slot until every layer before
    // it is done, and one big layer would leave the other cores idle.
    let mut packed: Vec<(usize, Packed)> = futures::stream::iter(jobs)
        .buffer_unordered(pack_concurrency())
        .try_collect()
        .await?;
    packed.sort_by_key(|(i, _)| *i);
    let (layers, trees): (Vec<_>, Vec<_>) = packed.into_iter().map(|(_, done)| done).unzip();
    Ok((layers, trees.into_iter().flatten().collect()))
}

/// Pack one layer, store the blob, and only then record it in the index.
async fn pack_store_layer(
    ctx: &Arc<Context>,
    key: String,
    group: LayerGroup,
    codec: LayerCodec,
    list: BTreeSet<String>,
) -> Result<Packed, BuildError> {
    let t = Instant::now();
    let (file, path) = temp_file(ctx)?;
    let packed = ctx
        .store
        .pack_listing(group.contents.clone(), file, compression(codec), list)
        .await?;
    let digests = packed.digests;
    let entry = LayerEntry {
        layer: LayerDesc {
            digest: digests.digest,
            diff_id: digests.diff_id,
            size: digests.size,
        },
        contents: group.contents,
    };
    ctx.blobs.put_file(&entry.layer.digest, &path).await?;
    ctx.index.put_layer(&key, &entry).await?;
    let (layer, paths) = (entry.layer, entry.contents.len());
    let elapsed_ms = t.elapsed().as_millis() as u64;
    tracing::info!(digest = %layer.digest, size = layer.size, paths, elapsed_ms, "{}", events::LAYER_PACKED);
    Ok((layer, packed.trees))
}

/// A temp file in the scratch dir for a layer being packed. The path deletes the file when
/// dropped, so a failed packing or upload leaves nothing behind; a stored file is gone
/// already (renamed into place, or uploaded and removed).
fn temp_file(ctx: &Context) -> Result<(LayerOut, TempPath), BuildError> {
    let io = |e| BuildError::Storage(StorageError::io(&ctx.scratch, e));
    let (file, path) = tempfile::NamedTempFile::new_in(&ctx.scratch)
        .map_err(io)?
        .into_parts();
    Ok((std::io::BufWriter::with_capacity(1 << 20, file), path))
}

/// The symlink-forest layer of the requested packages (`trees`: store path and listing, in
/// the order conflicts resolve). Not cached in the index: it is small, and its digest
/// dedupes the blob.
async fn customisation_layer(
    ctx: &Arc<Context>,
    trees: Vec<(String, Tree)>,
    codec: LayerCodec,
) -> Result<LayerDesc, BuildError> {
    let (mut out, path) = temp_file(ctx)?;
    let digests = tokio::task::spawn_blocking(move || {
        let entries = customisation_entries(&trees);
        let d = pack_entries(&entries, &mut out, compression(codec))?;
        out.flush().map_err(PackError::Output)?;
        Ok::<_, BuildError>(d)
    })
    .await??;
    let desc = LayerDesc {
        digest: digests.digest,
        diff_id: digests.diff_id,
        size: digests.size,
    };
    ctx.blobs.put_file(&desc.digest, &path).await?;
    tracing::info!(digest = %desc.digest, size = desc.size, "customisation layer packed");
    Ok(desc)
}

/// Store config and both manifests as blobs; return the manifest entry.
async fn write_docs(
    ctx: &Context,
    image: &ImageName,
    layers: &[LayerDesc],
) -> Result<ManifestEntry, BuildError> {
    let docs = image_docs_with_codec(image.arch, layers, image.has_shell(), image.codec)?;
    Ok(put_image_docs(&*ctx.blobs, docs).await?)
}
