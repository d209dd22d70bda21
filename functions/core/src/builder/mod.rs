//! Building images: the `Builder` trait the registry calls, and `NixBuilder`, which runs the
//! build steps itself (in `nixery serve` and in the builder Lambda).

mod inflight;
mod keys;
mod nix_builder;
mod steps;

pub use inflight::InFlight;
pub use keys::{
    alias_key, compression, layer_format, layer_key, manifest_key, LAYER_FORMAT, ZSTD_LAYER_FORMAT,
};
pub use nix_builder::{
    BuildContext, BuildSettings, NixBuilder, DEFAULT_LEASE_TTL, DEFAULT_PIN_TTL,
};

use crate::binary_cache::BinaryCacheError;
use crate::image::ImageError;
use crate::name::ImageName;
use crate::nix::NixError;
use crate::pack::PackError;
use crate::storage::{ManifestEntry, StorageError};
use async_trait::async_trait;
use std::sync::Arc;

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
    Cache(#[from] BinaryCacheError),
    #[error("a build task panicked or was cancelled: {0}")]
    Interrupted(String),
    #[error("the builder function {0}")]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("the daily build limit is reached; retry in {retry_after} s")]
    BuildQuota { retry_after: u64 },
}

/// How a build delegated to another process (the builder Lambda) went wrong. The adapter
/// logs the details; these say only what a client may see.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("could not be invoked")]
    Invoke,
    #[error("is at its concurrency limit")]
    Throttled,
    #[error("did not answer within {0} s")]
    Timeout(u64),
    #[error("crashed ({0})")]
    Crashed(String),
    #[error("gave an unreadable answer")]
    BadResponse,
    /// The builder ran and failed; `message` was already made fit for clients there.
    #[error("failed: {message}")]
    Failed { unavailable: bool, message: String },
}

impl From<tokio::task::JoinError> for BuildError {
    fn from(e: tokio::task::JoinError) -> Self {
        BuildError::Interrupted(e.to_string())
    }
}

/// Turns an image request into its manifests, from cache or by building.
#[async_trait]
pub trait Builder: Send + Sync {
    async fn manifest(
        &self,
        image: &ImageName,
        tag: &str,
    ) -> Result<ManifestEntry, Arc<BuildError>>;

    /// Like `manifest`, asking `gate` right before a build would start (a tenant's daily
    /// build limit). Builders that never build themselves need not override it.
    async fn manifest_gated(
        &self,
        image: &ImageName,
        tag: &str,
        gate: Arc<dyn BuildGate>,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        let _ = gate;
        self.manifest(image, tag).await
    }
}

/// Asked before a build starts; an error stops it.
#[async_trait]
pub trait BuildGate: Send + Sync {
    async fn admit(&self) -> Result<(), BuildError>;
}

/// Lets every build through (no accounts).
pub struct OpenGate;

#[async_trait]
impl BuildGate for OpenGate {
    async fn admit(&self) -> Result<(), BuildError> {
        Ok(())
    }
}
