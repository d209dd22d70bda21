//! A binary cache as the source of store paths.

use super::{LayerOut, Packed, StorePaths};
use crate::binary_cache::BinaryCache;
use crate::builder::BuildError;
use crate::customisation::Tree;
use crate::graph::ClosureGraph;
use crate::nix::Nix;
use crate::pack::{Compression, LayerDigests};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A binary cache: nothing is built; Nix only evaluated the names, and the
/// files come from signed NARs, streamed straight into layers.
pub struct CacheStore {
    cache: BinaryCache,
}

impl CacheStore {
    pub fn new(cache: BinaryCache) -> Self {
        CacheStore { cache }
    }
}

#[async_trait]
impl StorePaths for CacheStore {
    async fn realise(
        &self,
        _nix: &Nix,
        _request: &Value,
        found: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, BuildError> {
        Ok(found.values().cloned().collect())
    }

    async fn closure(&self, _nix: &Nix, roots: &[String]) -> Result<ClosureGraph, BuildError> {
        Ok(self.cache.closure(roots).await?)
    }

    async fn pack(
        &self,
        paths: Vec<String>,
        out: LayerOut,
        compression: Compression,
    ) -> Result<LayerDigests, BuildError> {
        Ok(self.cache.pack_layer(&paths, out, compression).await?)
    }

    async fn tree(&self, path: &str) -> Result<Tree, BuildError> {
        Ok(self.cache.tree(path).await?)
    }

    /// One pass: the listings come from the NARs being packed, never fetched twice.
    async fn pack_listing(
        &self,
        paths: Vec<String>,
        out: LayerOut,
        compression: Compression,
        list: BTreeSet<String>,
    ) -> Result<Packed, BuildError> {
        let packed = self
            .cache
            .pack_layer_listing(&paths, out, compression, list);
        let (digests, trees) = packed.await?;
        Ok(Packed { digests, trees })
    }
}
