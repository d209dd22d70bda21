//! Store paths from a Nix binary cache, for builders without a Nix store (build step 3 in
//! DESIGN.md): signed `.narinfo` files give the closure graph, and NARs are streamed straight
//! into layer tar entries, never touching the disk.
//!
//! Trust: a narinfo counts only with a valid signature from a trusted key, and every NAR must
//! match the signed size and hash. Streaming means the hash is known only at the end, so a
//! layer whose packing fails must be discarded by the caller.

mod fetch;
mod layer;
mod nar;
mod narinfo;
mod nixbase32;
mod signature;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

pub use fetch::{check_relative, ByteStream, CacheTransport, FileTransport, HttpTransport};
pub use nar::{read_nar, HashingReader, NarSink};
pub use narinfo::{NarCompression, NarInfo, STORE_DIR};
pub use signature::TrustedKeys;

use crate::customisation::Tree;
use crate::graph::{ClosureGraph, PathInfo};
use crate::pack::{Compression, LayerDigests, PackError};

/// How many narinfo requests are in flight at once while walking a closure.
const PARALLEL_FETCHES: usize = 8;
/// Narinfos are a few hundred bytes (more with many references); anything past this is not one.
const MAX_NARINFO: u64 = 1 << 20;

#[derive(thiserror::Error, Debug)]
pub enum BinaryCacheError {
    #[error("narinfo of {path}: {reason}")]
    NarInfo { path: String, reason: String },
    #[error("invalid trusted key {0:?}: expected name:base64(32-byte ed25519 public key)")]
    Key(String),
    #[error("no trusted keys given: every narinfo would be refused")]
    NoKeys,
    #[error("{path}: no valid signature from a trusted key (trusted: {trusted})")]
    Untrusted { path: String, trusted: String },
    #[error("{path}: not in the binary cache: {source}")]
    Missing { path: String, source: io::Error },
    #[error("{path}: fetching from the binary cache: {source}")]
    Fetch { path: String, source: io::Error },
    #[error("{path}: NAR: {source}")]
    Nar { path: String, source: io::Error },
    #[error("{path}: packing its NAR: {source}")]
    Pack { path: String, source: PackError },
    #[error("unsupported binary cache URL {0:?}: use http://, https:// or file://")]
    Url(String),
    #[error("the NAR task panicked or was cancelled: {0}")]
    Interrupted(String),
}

type Result<T, E = BinaryCacheError> = std::result::Result<T, E>;

fn fetch_error(path: &str, source: io::Error) -> BinaryCacheError {
    let path = path.to_string();
    match source.kind() {
        io::ErrorKind::NotFound => BinaryCacheError::Missing { path, source },
        _ => BinaryCacheError::Fetch { path, source },
    }
}

/// A binary cache and the keys its narinfos must be signed with.
#[derive(Clone)]
pub struct BinaryCache {
    transport: Arc<dyn CacheTransport>,
    keys: TrustedKeys,
}

impl BinaryCache {
    /// `base_url` is `http(s)://host/prefix` or `file:///dir` (a `?query`, as in Nix's
    /// `file://dir?compression=xz`, is ignored); `trusted_keys` are `name:base64` public keys.
    pub fn new<S: AsRef<str>>(base_url: &str, trusted_keys: &[S]) -> Result<Self> {
        let transport: Arc<dyn CacheTransport> = if let Some(dir) = base_url.strip_prefix("file://")
        {
            let dir = dir.split('?').next().unwrap_or_default();
            Arc::new(FileTransport::new(dir))
        } else if base_url.starts_with("http://") || base_url.starts_with("https://") {
            let http = HttpTransport::new(base_url).map_err(|source| BinaryCacheError::Fetch {
                path: base_url.to_string(),
                source,
            })?;
            Arc::new(http)
        } else {
            return Err(BinaryCacheError::Url(base_url.to_string()));
        };
        Self::with_transport(transport, TrustedKeys::parse(trusted_keys)?)
    }

    pub fn with_transport(transport: Arc<dyn CacheTransport>, keys: TrustedKeys) -> Result<Self> {
        if keys.is_empty() {
            return Err(BinaryCacheError::NoKeys);
        }
        Ok(BinaryCache { transport, keys })
    }

    /// The signed narinfo of `store_path` (absolute), checked against the trusted keys.
    pub async fn narinfo(&self, store_path: &str) -> Result<NarInfo> {
        let bad = |reason| BinaryCacheError::NarInfo {
            path: store_path.to_string(),
            reason,
        };
        let path = narinfo::store_path(store_path).map_err(bad)?;
        let hash = &path[STORE_DIR.len() + 1..][..32];
        let file = format!("{hash}.narinfo");
        let mut text = String::new();
        let stream = self.transport.get(&file).await;
        let read = async { stream?.take(MAX_NARINFO).read_to_string(&mut text).await };
        read.await.map_err(|e| fetch_error(&path, e))?;
        let info = NarInfo::parse(&path, &text)?;
        // The signature covers StorePath, so a narinfo signed for another path would verify;
        // it must describe the path asked for.
        if info.store_path != path {
            return Err(bad(format!("{file} describes {}", info.store_path)));
        }
        self.keys.verify(&info)?;
        Ok(info)
    }

    /// Signed narinfos of `paths`, in the same order, fetched several at a time.
    pub async fn narinfos(&self, paths: &[String]) -> Result<Vec<NarInfo>> {
        // Owned paths and boxed futures keep this future Send for any caller
        // (a borrowing closure here trips the compiler's higher-ranked check).
        let fetches: Vec<futures::future::BoxFuture<'_, Result<NarInfo>>> = paths
            .iter()
            .cloned()
            .map(|p| Box::pin(async move { self.narinfo(&p).await }) as _)
            .collect();
        futures::stream::iter(fetches)
            .buffered(PARALLEL_FETCHES)
            .try_collect()
            .await
    }

    /// The runtime closure of `roots`, walked through the references of signed narinfos.
    pub async fn closure(&self, roots: &[String]) -> Result<ClosureGraph> {
        let mut seen: BTreeSet<String> = roots.iter().cloned().collect();
        let mut queue: VecDeque<String> = seen.iter().cloned().collect();
        let mut running = FuturesUnordered::new();
        let mut paths = BTreeMap::new();
        loop {
            while running.len() < PARALLEL_FETCHES {
                let Some(path) = queue.pop_front() else { break };
                running.push(async move { self.narinfo(&path).await });
            }
            let Some(info) = running.next().await else {
                break;
            };
            let info = info?;
            for reference in &info.references {
                if seen.insert(reference.clone()) {
                    queue.push_back(reference.clone());
                }
            }
            let references = info
                .references
                .into_iter()
                .filter(|r| *r != info.store_path);
            let entry = PathInfo {
                path: info.store_path.clone(),
                nar_size: info.nar_size,
                references: references.collect(),
            };
            paths.insert(info.store_path, entry);
        }
        let roots = roots.to_vec();
        Ok(ClosureGraph { roots, paths })
    }

    /// Pack `paths` (absolute store paths, any order) into one layer written to `out`, from
    /// their NARs, with the same bytes `pack::pack_paths` gives for the same store paths
    /// (hard links aside: NARs have none). On error `out` holds a partial layer: discard it.
    pub async fn pack_layer<W: Write + Send + 'static>(
        &self,
        paths: &[String],
        out: W,
        compression: Compression,
    ) -> Result<LayerDigests> {
        let packed = self.pack_layer_listing(paths, out, compression, BTreeSet::new());
        Ok(packed.await?.0)
    }

    /// Like [`Self::pack_layer`], also returning the listings of the paths in `list` (those
    /// the customisation layer needs), taken while their NARs stream into the layer.
    pub async fn pack_layer_listing<W: Write + Send + 'static>(
        &self,
        paths: &[String],
        out: W,
        compression: Compression,
        list: BTreeSet<String>,
    ) -> Result<(LayerDigests, Vec<(String, Tree)>)> {
        let mut paths = paths.to_vec();
        paths.sort();
        paths.dedup();
        let infos = self.narinfos(&paths).await?;
        let transport = self.transport.clone();
        let blocking =
            move |handle| layer::pack(&handle, transport, &infos, out, compression, &list);
        self.blocking(blocking).await
    }

    /// The listing of `store_path` from its NAR, for the customisation layer; only names are
    /// kept, file contents are hashed and dropped.
    pub async fn tree(&self, store_path: &str) -> Result<Tree> {
        let info = self.narinfo(store_path).await?;
        let transport = self.transport.clone();
        self.blocking(move |handle| layer::tree(&handle, transport, &info))
            .await
    }

    /// Run NAR work on a blocking thread: decompression, hashing and gzip are CPU-bound and
    /// the layer writer is synchronous. It reads the async transport through the handle.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(tokio::runtime::Handle) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || work(handle))
            .await
            .map_err(|e| BinaryCacheError::Interrupted(e.to_string()))?
    }
}
