//! `nixery popularity`: closure counts of a package set for `--popularity`. The walking and
//! counting live in `nixery_core::popularity`; this is argument handling and output.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use nixery_core::binary_cache::BinaryCache;
use nixery_core::graph::PathInfo;
use nixery_core::popularity::{self as pop, CacheWalk, ClosureCountsFile, Progress};

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["binary_cache", "local_store", "path_info"])))]
pub struct PopularityArgs {
    /// Walk narinfo references in this binary cache (http(s):// or file://).
    #[arg(long)]
    binary_cache: Option<String>,
    /// Public keys (name:base64) the binary cache's narinfos must be signed with; repeatable.
    #[arg(long = "trusted-key", value_delimiter = ' ')]
    trusted_keys: Vec<String>,
    /// Read references from the local Nix store (`nix path-info --recursive`).
    #[arg(long)]
    local_store: bool,
    /// Read references from a `nix path-info --json --recursive` file; without roots,
    /// every path in it is a root.
    #[arg(long)]
    path_info: Option<PathBuf>,
    /// The package set's top-level store paths, one per line, from a file or an http(s)
    /// URL, plain or xz (a channel's store-paths.xz).
    #[arg(long)]
    roots: Option<String>,
    /// A top-level store path; repeatable, added to --roots.
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Narinfo requests in flight at once.
    #[arg(long, default_value_t = CacheWalk::default().parallel)]
    parallel: usize,
    /// Where to write the counts (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub async fn popularity(a: PopularityArgs) -> Result<()> {
    let mut roots = match &a.roots {
        Some(source) => pop::read_roots(source).await?,
        None => Vec::new(),
    };
    roots.extend(a.paths.iter().cloned());
    if roots.is_empty() && a.path_info.is_none() {
        bail!("no roots: give --roots FILE|URL or --path");
    }
    let (paths, roots) = graph(&a, roots).await?;
    let counts = pop::closure_counts(&paths, &roots);
    let file = ClosureCountsFile::new(roots.len() as u64, pop::by_name(&counts));
    eprintln!(
        "popularity: {} roots, {} paths counted, {} names",
        roots.len(),
        counts.len(),
        file.counts.len()
    );
    write(&a, &file)
}

/// The reference graph from the chosen source, and the roots to count.
async fn graph(
    a: &PopularityArgs,
    roots: Vec<String>,
) -> Result<(BTreeMap<String, PathInfo>, Vec<String>)> {
    let mut report = |p: &Progress| {
        eprintln!(
            "popularity: {} paths read, {} queued, {} missing, {:.0} s",
            p.fetched,
            p.queued,
            p.missing,
            p.elapsed.as_secs_f64()
        )
    };
    if let Some(file) = &a.path_info {
        return Ok(pop::path_info_graph(file, &roots)?);
    }
    if a.local_store {
        return Ok((pop::local_store_graph(&roots, &mut report).await?, roots));
    }
    let url = a.binary_cache.as_deref().unwrap_or_default();
    if a.trusted_keys.is_empty() {
        bail!("--binary-cache needs at least one --trusted-key");
    }
    let cache =
        BinaryCache::new(url, &a.trusted_keys).with_context(|| format!("binary cache {url}"))?;
    let walk = CacheWalk {
        parallel: a.parallel,
        ..CacheWalk::default()
    };
    let (paths, _) = pop::cache_graph(&cache, &roots, &walk, &mut report).await?;
    Ok((paths, roots))
}

fn write(a: &PopularityArgs, file: &ClosureCountsFile) -> Result<()> {
    let text = serde_json::to_string(file)?;
    match &a.output {
        Some(path) => {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
        }
        None => Ok(writeln!(std::io::stdout().lock(), "{text}")?),
    }
}
