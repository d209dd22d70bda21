//! Where the reference graph of a package set comes from: a binary cache (narinfo
//! `References`, as Nixery's popcount reads them), the local Nix store, or a
//! `nix path-info --json` file; and the list of top-level store paths (the roots).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::binary_cache::{BinaryCache, BinaryCacheError, NarInfo};
use crate::graph::{ClosureGraph, GraphError, PathInfo};

/// Roots per `nix path-info` call: keeps the command line well under the kernel's limit.
const PATH_INFO_BATCH: usize = 500;
/// Progress is reported at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// xz's stream magic: a roots list such as a channel's `store-paths.xz`.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
/// A roots list larger than this is not one (nixpkgs' is ~10 MB uncompressed).
const MAX_ROOTS_BYTES: u64 = 512 << 20;

#[derive(thiserror::Error, Debug)]
pub enum SourceError {
    #[error(transparent)]
    Cache(#[from] BinaryCacheError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("`nix path-info` failed: {0}")]
    Nix(String),
    #[error("{0}")]
    Roots(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Io { what, source }
}

/// How to walk a binary cache.
#[derive(Clone, Debug)]
pub struct CacheWalk {
    /// Narinfo requests in flight at once.
    pub parallel: usize,
    /// Attempts per narinfo on a transport error (a long walk should outlast a blip).
    pub attempts: u32,
}

impl Default for CacheWalk {
    fn default() -> Self {
        Self {
            parallel: 32,
            attempts: 3,
        }
    }
}

/// Where a walk stands, for progress output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Narinfos fetched.
    pub fetched: u64,
    /// Paths found but not fetched yet.
    pub queued: u64,
    /// Paths the cache does not hold (skipped: counts cover the rest).
    pub missing: u64,
    pub elapsed: Duration,
}

/// The reference graph of the closures of `roots`, walked through the cache's signed
/// narinfos with `walk.parallel` requests in flight. Paths the cache lacks are skipped and
/// counted in the final [`Progress`]; any other failure ends the walk. `progress` is called
/// every few seconds and once at the end.
pub async fn cache_graph(
    cache: &BinaryCache,
    roots: &[String],
    walk: &CacheWalk,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(BTreeMap<String, PathInfo>, Progress), SourceError> {
    let started = Instant::now();
    let mut seen: HashSet<String> = HashSet::new();
    // A root listed twice is fetched once.
    let mut queue: VecDeque<String> = roots
        .iter()
        .filter(|r| seen.insert((*r).clone()))
        .cloned()
        .collect();
    let mut running = FuturesUnordered::new();
    let mut paths = BTreeMap::new();
    let mut state = Progress::default();
    let mut reported = Instant::now();
    loop {
        while running.len() < walk.parallel.max(1) {
            let Some(path) = queue.pop_front() else { break };
            running.push(fetch(cache, path, walk.attempts));
        }
        let Some(result) = running.next().await else {
            break;
        };
        match result {
            Ok(info) => {
                let fresh = info.references.iter().filter(|r| seen.insert((*r).clone()));
                queue.extend(fresh.cloned().collect::<Vec<_>>());
                paths.insert(info.store_path.clone(), path_info(info));
                state.fetched += 1;
            }
            Err(BinaryCacheError::Missing { .. }) => state.missing += 1,
            Err(e) => return Err(e.into()),
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            state.queued = (queue.len() + running.len()) as u64;
            state.elapsed = started.elapsed();
            progress(&state);
            reported = Instant::now();
        }
    }
    state.queued = 0;
    state.elapsed = started.elapsed();
    progress(&state);
    Ok((paths, state))
}

/// One narinfo, retried with a growing pause on transport errors (not on a missing path
/// or a bad signature: those would not change).
async fn fetch(
    cache: &BinaryCache,
    path: String,
    attempts: u32,
) -> Result<NarInfo, BinaryCacheError> {
    let mut attempt = 1;
    loop {
        match cache.narinfo(&path).await {
            Err(BinaryCacheError::Fetch { .. }) if attempt < attempts => {
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn path_info(info: NarInfo) -> PathInfo {
    let own = info.store_path;
    let references = info.references.into_iter().filter(|r| *r != own).collect();
    PathInfo {
        path: own,
        nar_size: info.nar_size,
        references,
    }
}

/// The reference graph of the closures of `roots` from the local Nix store, with
/// `nix path-info --json --recursive`, a batch of roots per call.
pub async fn local_store_graph(
    roots: &[String],
    progress: &mut dyn FnMut(&Progress),
) -> Result<BTreeMap<String, PathInfo>, SourceError> {
    let started = Instant::now();
    let mut paths = BTreeMap::new();
    for (n, batch) in roots.chunks(PATH_INFO_BATCH).enumerate() {
        let out = tokio::process::Command::new("nix")
            .args(["--extra-experimental-features", "nix-command"])
            .args(["path-info", "--json", "--recursive"])
            .args(batch)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(io_error("running nix path-info"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(SourceError::Nix(stderr.trim().to_string()));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let graph = ClosureGraph::from_path_info_json(batch.to_vec(), &text)?;
        paths.extend(graph.paths);
        let done = (n * PATH_INFO_BATCH + batch.len()) as u64;
        progress(&Progress {
            fetched: paths.len() as u64,
            queued: roots.len() as u64 - done,
            missing: 0,
            elapsed: started.elapsed(),
        });
    }
    Ok(paths)
}

/// The reference graph in a `nix path-info --json --recursive` file (either of Nix's
/// shapes). With no `roots`, every path of the file is a root.
pub fn path_info_graph(
    file: &Path,
    roots: &[String],
) -> Result<(BTreeMap<String, PathInfo>, Vec<String>), SourceError> {
    let text = std::fs::read_to_string(file).map_err(io_error(file.display().to_string()))?;
    let graph = ClosureGraph::from_path_info_json(roots.to_vec(), &text)?;
    let roots = match roots.is_empty() {
        true => graph.paths.keys().cloned().collect(),
        false => roots.to_vec(),
    };
    Ok((graph.paths, roots))
}

/// Top-level store paths, one per line, from a file or an http(s) URL, xz-compressed or
/// not: a channel's `store-paths.xz` as it is published. Blank lines are skipped.
pub async fn read_roots(source: &str) -> Result<Vec<String>, SourceError> {
    let raw = if source.starts_with("http://") || source.starts_with("https://") {
        download(source).await?
    } else {
        std::fs::read(source).map_err(io_error(source))?
    };
    let text = if raw.starts_with(XZ_MAGIC) {
        let mut text = String::new();
        liblzma::read::XzDecoder::new_multi_decoder(raw.as_slice())
            .take(MAX_ROOTS_BYTES)
            .read_to_string(&mut text)
            .map_err(io_error(format!("decompressing {source}")))?;
        text
    } else {
        String::from_utf8(raw).map_err(|_| SourceError::Roots(format!("{source}: not UTF-8")))?
    };
    let roots: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    match roots.iter().find(|r| !r.starts_with('/')) {
        Some(bad) => Err(SourceError::Roots(format!(
            "{source}: {bad:?} is not a store path"
        ))),
        None => Ok(roots),
    }
}

async fn download(url: &str) -> Result<Vec<u8>, SourceError> {
    let failed = |e: reqwest::Error| SourceError::Io {
        what: url.to_string(),
        source: std::io::Error::other(e),
    };
    let response = reqwest::get(url).await.map_err(failed)?;
    let response = response.error_for_status().map_err(failed)?;
    Ok(response.bytes().await.map_err(failed)?.to_vec())
}
