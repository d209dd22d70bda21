//! The local Nix store: `nix-build`, `nix path-info`, and files read in place.

use super::{LayerOut, StorePaths};
use crate::builder::BuildError;
use crate::customisation::Tree;
use crate::graph::ClosureGraph;
use crate::nix::Nix;
use crate::pack::{pack_paths, Compression, LayerDigests, PackError};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// The local Nix store: `nix-build`, `nix path-info`, and files read in place.
pub struct NixStore;

#[async_trait]
impl StorePaths for NixStore {
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
        .await?
    }

    async fn tree(&self, path: &str) -> Result<Tree, BuildError> {
        let p = path.to_string();
        tokio::task::spawn_blocking(move || {
            Tree::read(std::path::Path::new(&p)).map_err(|source| BuildError::StorePath {
                path: p.clone(),
                source,
            })
        })
        .await?
    }
}
