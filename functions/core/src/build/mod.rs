//! Building images: the `Builder` trait the registry calls, and the local
//! builder that runs Nix on this machine.

mod inflight;
mod local;
mod steps;
pub mod store;

pub use inflight::InFlight;
pub use local::{manifest_key, BuildSettings, LocalBuilder};
pub use steps::layer_key;

use crate::image::ImageError;
use crate::name::ImageName;
use crate::nix::NixError;
use crate::pack::PackError;
use crate::storage::{ManifestEntry, StorageError};
use async_trait::async_trait;

/// Version of the layer format: part of every layer key, so that a change
/// in packing (tar layout, compressor) never reuses old blobs.
pub const LAYER_FORMAT: &str = "nixery-layer-v2-gzip4-1MiB-chunks-zlibrs";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("packages not found in {source_desc}: {}", .missing.join(", "))]
    UnknownPackages {
        missing: Vec<String>,
        source_desc: String,
    },
    #[error(transparent)]
    Nix(#[from] NixError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("packing a layer: {0}")]
    Pack(#[from] PackError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("reading store path {path}: {source}")]
    StorePath {
        path: String,
        source: std::io::Error,
    },
    #[error("another build of this image did not finish within {0} s")]
    LeaseTimeout(u64),
    #[error("binary cache: {0}")]
    Cache(#[from] crate::binary_cache::BinaryCacheError),
    #[error("build task failed: {0}")]
    Task(String),
}

/// Turns an image request into its manifests, from cache or by building.
#[async_trait]
pub trait Builder: Send + Sync {
    async fn manifest(
        &self,
        image: &ImageName,
        tag: &str,
    ) -> Result<ManifestEntry, std::sync::Arc<BuildError>>;
}
