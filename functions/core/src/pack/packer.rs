//! The packer: a tar stream hashed, compressed and hashed again, written in one pass.

use std::collections::hash_map::{Entry as Slot, HashMap};
use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::compress::Compressor;
use super::hashing::Hashing;
use super::{io_err, Compression, LayerDigests, PackError};

/// First tar path stored for each (device, inode) with several links.
pub(super) type Links = HashMap<(u64, u64), PathBuf>;
/// The mtime of every entry: the Nix store's, so layers look like the store they come from.
const MTIME: u64 = 1;
/// Mode of the parent directories we synthesise (`nix/`, `nix/store/`, ...).
const PARENT_MODE: u32 = 0o755;

/// tar -> hash (diff_id) -> compress -> hash and count (digest, size) -> out: one pass, and
/// memory stays bounded because file contents only ever pass through small copy buffers and
/// the compressor holds a few fixed-size chunks.
pub(super) struct Packer<W: Write> {
    tar: tar::Builder<Hashing<Compressor<Hashing<W>>>>,
    /// Directories already emitted as parents or explicit entries, so none appears twice.
    pub(super) dirs: HashSet<PathBuf>,
}

impl<W: Write> Packer<W> {
    pub(super) fn new(out: W, compression: Compression) -> Self {
        let compressor = Compressor::new(Hashing::new(out), compression);
        let tar = tar::Builder::new(Hashing::new(compressor));
        let dirs = HashSet::new();
        Packer { tar, dirs }
    }

    pub(super) fn finish(self) -> Result<LayerDigests, PackError> {
        let raw = self.tar.into_inner().map_err(PackError::Output)?;
        let diff_id = raw.digest();
        let mut compressed = raw.inner.finish().map_err(PackError::Output)?;
        compressed.flush().map_err(PackError::Output)?;
        let (digest, size) = (compressed.digest(), compressed.count);
        Ok(LayerDigests {
            digest,
            diff_id,
            size,
        })
    }

    /// Emit every missing ancestor of `rel` (outermost first), so extraction never invents one.
    pub(super) fn parents(&mut self, rel: &Path) -> Result<(), PackError> {
        let mut ancestors: Vec<&Path> = rel.ancestors().skip(1).collect();
        ancestors.pop(); // the empty path
        for dir in ancestors.into_iter().rev() {
            if self.dirs.insert(dir.to_path_buf()) {
                self.dir(dir, PARENT_MODE).map_err(io_err(dir))?;
            }
        }
        Ok(())
    }

    /// Walk `root` depth-first, parents before children, children sorted by name bytes.
    pub(super) fn tree(&mut self, root: &Path, links: &mut Links) -> Result<(), PackError> {
        let mut stack = vec![root.to_path_buf()];
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let rel = path.strip_prefix("/").unwrap_or(&path);
            if meta.is_dir() {
                self.dir(rel, meta.mode()).map_err(io_err(&path))?;
                stack.extend(children(&path)?);
            } else {
                self.node(&path, rel, &meta, links)?;
            }
        }
        Ok(())
    }

    /// A non-directory: symlink, regular file (or hard link to one already stored), or an error.
    fn node(
        &mut self,
        path: &Path,
        rel: &Path,
        meta: &Metadata,
        links: &mut Links,
    ) -> Result<(), PackError> {
        let kind = meta.file_type();
        let written = if kind.is_symlink() {
            fs::read_link(path).and_then(|target| self.link(rel, EntryType::Symlink, 0o777, target))
        } else if !kind.is_file() {
            return Err(PackError::Special {
                path: path.to_path_buf(),
            });
        } else if let Some(first) = first_link(links, rel, meta) {
            self.link(rel, EntryType::Link, meta.mode(), first)
        } else {
            self.file(path, rel, meta)
        };
        written.map_err(io_err(path))
    }

    fn file(&mut self, path: &Path, rel: &Path, meta: &Metadata) -> io::Result<()> {
        // take() stops a growing file from overrunning its header's size; limit() left over
        // means it shrank. Either way the archive would be corrupt, so say so.
        let mut reader = File::open(path)?.take(meta.len());
        self.data(rel, meta.mode(), meta.len(), &mut reader)?;
        match reader.limit() {
            0 => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while packed",
            )),
        }
    }

    pub(super) fn dir(&mut self, rel: &Path, mode: u32) -> io::Result<()> {
        // The trailing slash is what tar tools print and expect for directories.
        let mut name = rel.as_os_str().to_owned();
        name.push("/");
        let mut header = header(EntryType::Directory, mode, 0);
        self.tar.append_data(&mut header, name, io::empty())
    }

    pub(super) fn data(
        &mut self,
        rel: &Path,
        mode: u32,
        size: u64,
        data: impl Read,
    ) -> io::Result<()> {
        self.tar
            .append_data(&mut header(EntryType::Regular, mode, size), rel, data)
    }

    pub(super) fn link(
        &mut self,
        rel: &Path,
        kind: EntryType,
        mode: u32,
        target: impl AsRef<Path>,
    ) -> io::Result<()> {
        self.tar
            .append_link(&mut header(kind, mode, 0), rel, target)
    }
}

/// Where this file's inode was first stored, if it was; remembers it otherwise. Files with one
/// link skip the map, so it only grows with actual hard links.
fn first_link(links: &mut Links, rel: &Path, meta: &Metadata) -> Option<PathBuf> {
    if meta.nlink() < 2 {
        return None;
    }
    match links.entry((meta.dev(), meta.ino())) {
        Slot::Occupied(first) => Some(first.get().clone()),
        Slot::Vacant(slot) => {
            slot.insert(rel.to_path_buf());
            None
        }
    }
}

/// The entries of `dir`, reversed so that popping them off a stack yields ascending name order.
fn children(dir: &Path) -> Result<Vec<PathBuf>, PackError> {
    let mut names = fs::read_dir(dir)
        .and_then(|it| {
            it.map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
        })
        .map_err(io_err(dir))?;
    // OsString order on Unix is byte order, independent of locale.
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// A GNU header with everything that varies between machines pinned.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode & 0o7777);
    header.set_size(size);
    header.set_mtime(MTIME);
    header.set_uid(0);
    header.set_gid(0);
    header
}
