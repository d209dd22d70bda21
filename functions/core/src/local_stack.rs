//! The single-machine stack: filesystem blobs, redb index, and the local
//! Nix store (or a binary cache) behind the core traits.

use crate::builder::{BuildContext, BuildSettings, NixBuilder};
use crate::nix::{Nix, NixError};
use crate::source::PackageSource;
use crate::storage::fs::FsBlobStore;
use crate::storage::redb::RedbIndex;
use crate::storage::StorageError;
use crate::store_paths::StorePaths;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Nix(#[from] NixError),
}

pub struct LocalStack {
    pub blobs: Arc<FsBlobStore>,
    pub index: Arc<RedbIndex>,
    pub builder: Arc<NixBuilder>,
}

impl LocalStack {
    /// Open (creating if needed) the storage directory:
    /// `blobs/sha256/<hex>`, `tmp/`, `index.redb` and `nix/resolve.nix`. Nix programs are
    /// run from `nix_bin_dir` if given, else found in PATH.
    pub fn open(
        storage: &Path,
        source: PackageSource,
        store: Arc<dyn StorePaths>,
        settings: BuildSettings,
        nix_timeout: Duration,
        nix_bin_dir: Option<PathBuf>,
    ) -> Result<Self, OpenError> {
        let blobs = Arc::new(FsBlobStore::open(storage)?);
        let index = Arc::new(RedbIndex::open(&storage.join("index.redb"))?);
        let builder = Arc::new(NixBuilder::new(BuildContext {
            nix: Nix::new(&storage.join("nix"), nix_timeout)?.with_bin_dir(nix_bin_dir),
            store,
            source,
            blobs: blobs.clone(),
            index: index.clone(),
            scratch: blobs.tmp_dir().to_path_buf(),
            settings,
        }));
        Ok(LocalStack {
            blobs,
            index,
            builder,
        })
    }
}
