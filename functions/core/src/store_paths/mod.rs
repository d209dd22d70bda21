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
use std::collections::BTreeMap;
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
}
