//! [`LayerWriter`]: the packer for callers that produce entries themselves (NAR streams).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use super::packer::Packer;
use super::{invalid, io_err, Compression, LayerDigests, PackError};

/// A streaming layer writer for callers that produce entries themselves (e.g. from a NAR):
/// the same tar, headers and compression as [`pack_paths`], without reading the filesystem.
/// Entries must come in the order [`pack_paths`] would write them (sorted, parents first) for
/// the bytes to match; missing parent directories are added with mode 0755. Paths are relative.
pub struct LayerWriter<W: Write> {
    packer: Packer<W>,
    /// Files and symlinks written, so no path appears twice or under a non-directory (an
    /// unpacker would replace one with the other).
    leaves: HashSet<PathBuf>,
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W, compression: Compression) -> Self {
        let packer = Packer::new(out, compression);
        LayerWriter {
            packer,
            leaves: HashSet::new(),
        }
    }

    /// A directory; remembered (one path per directory) so later parents are not repeated.
    pub fn dir(&mut self, path: &Path, mode: u32) -> Result<(), PackError> {
        self.start(path, false)?;
        if !self.packer.dirs.insert(path.to_path_buf()) {
            return Err(invalid(path, "entry path appears twice"));
        }
        self.packer.dir(path, mode).map_err(io_err(path))
    }

    /// A regular file of exactly `size` bytes read from `data`; fewer bytes is an error.
    pub fn file(
        &mut self,
        path: &Path,
        mode: u32,
        size: u64,
        data: impl Read,
    ) -> Result<(), PackError> {
        self.start(path, true)?;
        // The header already says `size`: a short reader would corrupt the archive.
        let mut reader = data.take(size);
        let written = self.packer.data(path, mode, size, &mut reader);
        written.map_err(io_err(path))?;
        match reader.limit() {
            0 => Ok(()),
            _ => Err(PackError::Io {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "file data ended early"),
            }),
        }
    }

    pub fn symlink(&mut self, path: &Path, target: impl AsRef<Path>) -> Result<(), PackError> {
        self.start(path, true)?;
        let written = self.packer.link(path, EntryType::Symlink, 0o777, target);
        written.map_err(io_err(path))
    }

    /// Close the tar and the compressor; the digests cover everything written.
    pub fn finish(self) -> Result<LayerDigests, PackError> {
        self.packer.finish()
    }

    fn start(&mut self, path: &Path, leaf: bool) -> Result<(), PackError> {
        if path.as_os_str().is_empty()
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(invalid(
                path,
                "entry path must be relative, without '.' or '..'",
            ));
        }
        let taken = (leaf && self.packer.dirs.contains(path))
            || path.ancestors().any(|a| self.leaves.contains(a));
        if taken {
            return Err(invalid(path, "entry path appears twice"));
        }
        self.packer.parents(path)?;
        if leaf {
            self.leaves.insert(path.to_path_buf());
        }
        Ok(())
    }
}
