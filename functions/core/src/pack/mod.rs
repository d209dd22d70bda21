//! Deterministic layer packing: filesystem trees or synthetic entries become one gzipped tar
//! layer, written in a single streaming pass that also yields the digest, diff_id and size.
//! Gzip is deflated on a few threads in fixed-size chunks (see [`compress`]); zstd is optional.
//!
//! Same input, same bytes: entries are sorted, mtime is fixed at 1 (as in the Nix store), owners
//! are 0 with empty names, the gzip header carries no mtime or file name, and the compressed
//! bytes depend neither on the number of threads nor on how file contents were read. Mode policy: the
//! permission bits (`mode & 0o7777`) are kept as they are on disk or in the [`Entry`]; store paths
//! are already canonical (0444/0555 files, 0555 dirs), and `/tmp` needs its sticky bit.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use crate::digest::Digest;

mod compress;
mod hashing;
mod packer;
#[cfg(test)]
mod tests;
mod writer;

use packer::Packer;
pub use writer::LayerWriter;

/// What a layer is known by: the manifest needs `digest` and `size`, the image config `diff_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// Of the compressed bytes.
    pub digest: Digest,
    /// Of the uncompressed tar.
    pub diff_id: Digest,
    /// Number of compressed bytes.
    pub size: u64,
}

/// Layer compression. The default is what the registry serves; the level and the packer's
/// chunking are part of the layer format (`build::LAYER_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Gzip at `level` 0..=9 (higher levels are treated as 9), deflated in parallel chunks.
    Gzip { level: u32 },
    /// Zstandard at `level` 1..=19 (clamped), one single-threaded stream.
    Zstd { level: i32 },
}

impl Compression {
    /// The registry's gzip level: within 1.05x the size of `pigz -6` and about twice as fast
    /// (README, "Performance").
    pub const GZIP_LEVEL: u32 = 4;
    /// zstd's own default level.
    pub const ZSTD_LEVEL: i32 = 3;

    /// The OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip {
            level: Self::GZIP_LEVEL,
        }
    }
}

/// One entry of a synthetic layer (the customisation layer); `path` is relative, no leading '/'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    fn path(&self) -> &Path {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                Path::new(path)
            }
        }
    }
}

/// Why a layer could not be packed; every variant about an input names its path.
#[derive(thiserror::Error, Debug)]
pub enum PackError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: is a socket, device or fifo, which a layer cannot hold", path.display())]
    Special { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    InvalidPath { path: PathBuf, reason: &'static str },
    #[error("writing the layer: {0}")]
    Output(#[source] io::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    let path = path.to_path_buf();
    move |source| PackError::Io { path, source }
}

fn invalid(path: &Path, reason: &'static str) -> PackError {
    let path = path.to_path_buf();
    PackError::InvalidPath { path, reason }
}

/// Pack existing filesystem trees (absolute paths, e.g. /nix/store/xxx-foo; each may be a dir,
/// file or symlink) into one layer written to `out`. Symlinks are stored, never followed.
pub fn pack_paths<W: Write>(
    roots: &[PathBuf],
    out: W,
    compression: Compression,
) -> Result<LayerDigests, PackError> {
    let mut roots: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
    // Path order is component-wise, so an ancestor sorts right before its descendants.
    roots.sort();
    roots.dedup();
    let mut packer = Packer::new(out, compression);
    let mut links = packer::Links::new();
    let mut last: Option<&Path> = None;
    for root in roots {
        let rel = root
            .strip_prefix("/")
            .map_err(|_| invalid(root, "root must be absolute"))?;
        if rel.as_os_str().is_empty() {
            return Err(invalid(root, "cannot pack the filesystem root"));
        }
        // A root inside the previous one was already packed with it.
        if last.is_some_and(|prev| root.starts_with(prev)) {
            continue;
        }
        packer.parents(rel)?;
        packer.tree(root, &mut links)?;
        last = Some(root);
    }
    packer.finish()
}

/// Pack synthetic entries (in any order; they are sorted here) into one layer. Missing parent
/// directories are added with mode 0755.
pub fn pack_entries<W: Write>(
    entries: &[Entry],
    out: W,
    compression: Compression,
) -> Result<LayerDigests, PackError> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    // The same component-wise order the filesystem walk produces.
    sorted.sort_by(|a, b| a.path().cmp(b.path()));
    let non_dirs: HashSet<&Path> = sorted
        .iter()
        .filter(|e| !matches!(e, Entry::Dir { .. }))
        .map(|e| e.path())
        .collect();
    let mut packer = Packer::new(out, compression);
    let mut prev: Option<&Path> = None;
    for entry in sorted {
        let rel = entry.path();
        check_entry_path(rel, prev, &non_dirs)?;
        packer.parents(rel)?;
        let written = match entry {
            Entry::Dir { mode, .. } => {
                packer.dirs.insert(rel.to_path_buf());
                packer.dir(rel, *mode)
            }
            Entry::File { mode, data, .. } => packer.data(rel, *mode, data.len() as u64, &data[..]),
            Entry::Symlink { target, .. } => packer.link(rel, EntryType::Symlink, 0o777, target),
        };
        written.map_err(io_err(rel))?;
        prev = Some(rel);
    }
    packer.finish()
}

/// Reject paths a layer must not contain: absolute, `..`, empty, duplicated, or below a non-dir.
fn check_entry_path(
    rel: &Path,
    prev: Option<&Path>,
    non_dirs: &HashSet<&Path>,
) -> Result<(), PackError> {
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid(
            rel,
            "entry path must be relative, without '.' or '..'",
        ));
    }
    if prev == Some(rel) {
        return Err(invalid(rel, "entry path appears twice"));
    }
    if rel.ancestors().skip(1).any(|a| non_dirs.contains(a)) {
        return Err(invalid(rel, "a parent of this entry is not a directory"));
    }
    Ok(())
}
