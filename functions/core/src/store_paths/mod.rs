//! Where the files of store paths come from, one of the core's four traits: the local Nix
//! store (built with Nix here), or a binary cache (no Nix build at all: the Lambda builder's
//! case).

mod cache_store;
mod nix_store;

pub use cache_store::CacheStore;
pub use nix_store::NixStore;

use crate::builder::BuildError;
use crate::customisation::Tree;
use crate::graph::ClosureGraph;
use crate::nix::Nix;
use crate::pack::{Compression, LayerDigests};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufWriter;

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
    /// `pack`, also returning the listings of those of `paths` that are in `list`. A source
    /// that must fetch a path to list it does both in one pass; by default, `tree` after.
    async fn pack_listing(
        &self,
        paths: Vec<String>,
        out: LayerOut,
        compression: Compression,
        list: BTreeSet<String>,
    ) -> Result<Packed, BuildError> {
        let listed: Vec<String> = paths
            .iter()
            .filter(|p| list.contains(*p))
            .cloned()
            .collect();
        let digests = self.pack(paths, out, compression).await?;
        let mut trees = Vec::new();
        for path in listed {
            let tree = self.tree(&path).await?;
            trees.push((path, tree));
        }
        Ok(Packed { digests, trees })
    }
}

/// A packed layer, and the listings of store paths asked for on the way.
pub struct Packed {
    pub digests: LayerDigests,
    pub trees: Vec<(String, Tree)>,
}
