//! The storage traits the core talks through, and their entries.
//!
//! Two implementations ship in the core (`fs` for blobs, `redb` for the index);
//! the AWS crate adds S3 and DynamoDB. An index entry always points at a blob
//! that exists: callers write the blob first and the entry after. Every
//! implementation runs the same `conformance` suite.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod fs;
pub mod redb;

use crate::digest::Digest;
use crate::image::{ImageDocs, LayerDesc};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A storage service (redb, S3, DynamoDB) failed; the message names the service and
    /// the operation, never credentials or request bodies.
    #[error("{service}: {message}")]
    Backend {
        service: &'static str,
        message: String,
    },
    /// A storage service shed load and kept doing so through the client's retries.
    #[error("{service} is throttling requests: {message}")]
    Throttled {
        service: &'static str,
        message: String,
    },
    #[error("corrupt entry {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("a storage task panicked or was cancelled: {0}")]
    Interrupted(String),
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn backend(service: &'static str, message: impl std::fmt::Display) -> Self {
        StorageError::Backend {
            service,
            message: message.to_string(),
        }
    }
}

/// Run blocking file or database work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Interrupted(e.to_string()))?
}

/// Milliseconds since the Unix epoch: lease expiry times are stored this way.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How a client gets a blob's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobAccess {
    /// Redirect the client (a presigned URL).
    Redirect(String),
    /// Serve this local file (with Range support).
    File(PathBuf),
}

/// Store an image's config and both manifests, the config first (a manifest is stored only
/// once what it points at is), and return the manifests' entry. Its layers must be stored.
pub async fn put_image_docs(
    blobs: &dyn BlobStore,
    docs: ImageDocs,
) -> Result<ManifestEntry, StorageError> {
    put_doc(blobs, docs.config).await?;
    let docker = put_doc(blobs, docs.docker_manifest).await?;
    let oci = put_doc(blobs, docs.oci_manifest).await?;
    Ok(ManifestEntry { docker, oci })
}

async fn put_doc(blobs: &dyn BlobStore, bytes: Vec<u8>) -> Result<BlobRef, StorageError> {
    let digest = Digest::of(&bytes);
    let size = bytes.len() as u64;
    blobs.put_bytes(&digest, bytes.into()).await?;
    Ok(BlobRef { digest, size })
}

/// Content-addressed blob storage.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Store the finished file at `file` under `digest`, taking the file over: it is gone
    /// afterwards, whether storing succeeded or not. Storing a digest that exists already
    /// succeeds.
    async fn put_file(&self, digest: &Digest, file: &Path) -> Result<(), StorageError>;
    /// Store small content (manifests, configs).
    async fn put_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError>;
    /// The size of a stored blob, or None.
    async fn size(&self, digest: &Digest) -> Result<Option<u64>, StorageError>;
    /// Read a small blob whole (manifests); None if absent or longer than `max_len`, which
    /// is then never read, so that a public layer digest cannot make the caller load it.
    async fn get_bytes(&self, digest: &Digest, max_len: u64)
        -> Result<Option<Bytes>, StorageError>;
    /// How to serve the blob, or None if absent.
    async fn access(&self, digest: &Digest) -> Result<Option<BlobAccess>, StorageError>;
}

/// A packed layer of store paths, as cached in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEntry {
    /// The blob, as manifests and configs name it.
    #[serde(flatten)]
    pub layer: LayerDesc,
    /// The store paths in the layer, sorted.
    pub contents: Vec<String>,
}

/// Where an image request last resolved to. A moving source (a channel, a git branch) is
/// resolved again once the entry is older than the configured refresh interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasEntry {
    pub manifest: ManifestEntry,
    /// The manifest's own key: the pinned package set, arch and packages.
    pub manifest_key: String,
    /// When the source was resolved, in ms since the epoch.
    pub resolved_ms: u64,
}

/// A stored blob's digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
}

/// A built image: its manifest in both media types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub docker: BlobRef,
    pub oci: BlobRef,
}

/// The cache index: layer, manifest and alias entries, and build leases.
#[async_trait]
pub trait Index: Send + Sync {
    /// Look up several layer keys at once; absent keys are missing from the map. The caller
    /// knows the contents (they make the key), so only the blobs come back.
    async fn get_layers(&self, keys: &[String])
        -> Result<HashMap<String, LayerDesc>, StorageError>;
    /// Insert unless present; returns whether this call inserted it.
    async fn put_layer(&self, key: &str, entry: &LayerEntry) -> Result<bool, StorageError>;
    /// Stored layers made only of paths in `closure`, so that a new image can reuse them as
    /// they are (registry-aware grouping), without reading every layer of the index.
    async fn layers_within(
        &self,
        closure: &BTreeSet<String>,
    ) -> Result<Vec<LayerEntry>, StorageError>;
    async fn get_manifest(&self, key: &str) -> Result<Option<ManifestEntry>, StorageError>;
    /// Insert unless present; returns whether this call inserted it.
    async fn put_manifest(&self, key: &str, entry: &ManifestEntry) -> Result<bool, StorageError>;
    async fn get_alias(&self, key: &str) -> Result<Option<AliasEntry>, StorageError>;
    /// Store or replace: an alias moves when its source does.
    async fn put_alias(&self, key: &str, entry: &AliasEntry) -> Result<(), StorageError>;
    /// Take the build lease for `key` unless someone else holds an unexpired one.
    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError>;
    /// Give the lease back if `owner` still holds it.
    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StorageError>;
}
