//! Where store paths come from: the local Nix store (built with Nix here),
//! or a binary cache (no Nix build at all: the Lambda builder's case).

use super::BuildError;
use crate::custom::Tree;
use crate::graph::ClosureGraph;
use crate::nix::Nix;
use crate::pack::{pack_paths, Compression, LayerDigests, PackError};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// A writer for a layer being packed.
pub type LayerOut = BufWriter<std::fs::File>;

#[async_trait]
pub trait StorePaths: Send + Sync {
    /// Make the resolved packages available; returns their output paths.
    async fn realise(
        &self,
        nix: &Nix,
        request: &Value,
        found: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, BuildError>;
    /// The runtime closure of `roots`.
    async fn closure(&self, nix: &Nix, roots: &[String]) -> Result<ClosureGraph, BuildError>;
    /// Pack `paths` into one layer written to `out`.
    async fn pack(
        &self,
        paths: Vec<String>,
        out: LayerOut,
        compression: Compression,
    ) -> Result<LayerDigests, BuildError>;
    /// The file listing of a store path (for the customisation layer).
    async fn tree(&self, path: &str) -> Result<Tree, BuildError>;
}

/// The local Nix store: `nix-build`, `nix path-info`, and files read in place.
pub struct LocalStore;

#[async_trait]
impl StorePaths for LocalStore {
    async fn realise(
        &self,
        nix: &Nix,
        request: &Value,
        _found: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, BuildError> {
        Ok(nix.realise(request).await?)
    }

    async fn closure(&self, nix: &Nix, roots: &[String]) -> Result<ClosureGraph, BuildError> {
        Ok(nix.closure(roots).await?)
    }

    async fn pack(
        &self,
        paths: Vec<String>,
        mut out: LayerOut,
        compression: Compression,
    ) -> Result<LayerDigests, BuildError> {
        let roots: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        tokio::task::spawn_blocking(move || {
            let d = pack_paths(&roots, &mut out, compression)?;
            out.flush().map_err(PackError::Output)?;
            Ok(d)
        })
        .await
        .map_err(|e| BuildError::Task(e.to_string()))?
    }

    async fn tree(&self, path: &str) -> Result<Tree, BuildError> {
        let p = path.to_string();
        tokio::task::spawn_blocking(move || {
            Tree::read(std::path::Path::new(&p)).map_err(|source| BuildError::StorePath {
                path: p.clone(),
                source,
            })
        })
        .await
        .map_err(|e| BuildError::Task(e.to_string()))?
    }
}

/// A binary cache: nothing is built; Nix only evaluated the names, and the
/// files come from signed NARs, streamed straight into layers.
pub struct CacheStore {
    cache: crate::binary_cache::BinaryCache,
}

impl CacheStore {
    pub fn new(cache: crate::binary_cache::BinaryCache) -> Self {
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
}
