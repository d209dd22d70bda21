//! The single-machine stack: filesystem blobs, redb index, and the local
//! Nix store (or a binary cache) behind the core traits.

use crate::build::store::StorePaths;
use crate::build::{BuildSettings, LocalBuilder};
use crate::nix::{Nix, NixError};
use crate::source::PackageSource;
use crate::storage::fs::FsBlobStore;
use crate::storage::redb::RedbIndex;
use crate::storage::StorageError;
use std::path::Path;
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
    pub builder: Arc<LocalBuilder>,
}

impl LocalStack {
    /// Open (creating if needed) the storage directory:
    /// `blobs/sha256/<hex>`, `tmp/`, `index.redb` and `nix/resolve.nix`.
    pub fn open(
        storage: &Path,
        source: PackageSource,
        store: Arc<dyn StorePaths>,
        settings: BuildSettings,
        nix_timeout: Duration,
    ) -> Result<Self, OpenError> {
        let blobs = Arc::new(FsBlobStore::open(storage)?);
        let index = Arc::new(RedbIndex::open(&storage.join("index.redb"))?);
        let nix = Nix::new(&storage.join("nix"), nix_timeout)?;
        let scratch = blobs.tmp_dir().to_path_buf();
        let builder = Arc::new(LocalBuilder::new(
            nix,
            store,
            source,
            blobs.clone(),
            index.clone(),
            scratch,
            settings,
        ));
        Ok(LocalStack {
            blobs,
            index,
            builder,
        })
    }
}
