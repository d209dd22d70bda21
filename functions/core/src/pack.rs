//! Deterministic layer packing: filesystem trees or synthetic entries become one gzipped tar
//! layer, written in a single streaming pass that also yields the digest, diff_id and size.
//! Gzip is deflated on a few threads in fixed-size chunks (see [`compress`]); zstd is optional.
//!
//! Same input, same bytes: entries are sorted, mtime is fixed at 1 (as in the Nix store), owners
//! are 0 with empty names, the gzip header carries no mtime or file name, and the compressed
//! bytes depend neither on the number of threads nor on how file contents were read. Mode policy: the
//! permission bits (`mode & 0o7777`) are kept as they are on disk or in the [`Entry`]; store paths
//! are already canonical (0444/0555 files, 0555 dirs), and `/tmp` needs its sticky bit.

use std::collections::hash_map::{Entry as Slot, HashMap};
use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

mod compress;

use compress::Compressor;

/// First tar path stored for each (device, inode) with several links.
type Links = HashMap<(u64, u64), PathBuf>;
/// The mtime of every entry: the Nix store's, so layers look like the store they come from.
const MTIME: u64 = 1;
/// Mode of the parent directories we synthesise (`nix/`, `nix/store/`, ...).
const PARENT_MODE: u32 = 0o755;

/// What a layer is known by: the manifest needs `digest` and `size`, the image config `diff_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// `sha256:<hex>` of the compressed bytes.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
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
    /// (tests/bench/PERFORMANCE.md).
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
    let mut links = HashMap::new();
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

/// A streaming layer writer for callers that produce entries themselves (e.g. from a NAR):
/// the same tar, headers and compression as [`pack_paths`], without reading the filesystem.
/// Entries must come in the order [`pack_paths`] would write them (sorted, parents first) for
/// the bytes to match; missing parent directories are added with mode 0755. Paths are relative.
pub struct LayerWriter<W: Write> {
    packer: Packer<W>,
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W, compression: Compression) -> Self {
        let packer = Packer::new(out, compression);
        LayerWriter { packer }
    }

    /// A directory; remembered (one path per directory) so later parents are not repeated.
    pub fn dir(&mut self, path: &Path, mode: u32) -> Result<(), PackError> {
        self.start(path)?;
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
        self.start(path)?;
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
        self.start(path)?;
        let written = self.packer.link(path, EntryType::Symlink, 0o777, target);
        written.map_err(io_err(path))
    }

    /// Close the tar and the compressor; the digests cover everything written.
    pub fn finish(self) -> Result<LayerDigests, PackError> {
        self.packer.finish()
    }

    fn start(&mut self, path: &Path) -> Result<(), PackError> {
        if path.as_os_str().is_empty()
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(invalid(
                path,
                "entry path must be relative, without '.' or '..'",
            ));
        }
        self.packer.parents(path)
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        let hasher = Sha256::new();
        Hashing {
            inner,
            hasher,
            count: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// tar -> hash (diff_id) -> compress -> hash and count (digest, size) -> out: one pass, and
/// memory stays bounded because file contents only ever pass through small copy buffers and
/// the compressor holds a few fixed-size chunks.
struct Packer<W: Write> {
    tar: tar::Builder<Hashing<Compressor<Hashing<W>>>>,
    /// Directories already emitted as parents or explicit entries, so none appears twice.
    dirs: HashSet<PathBuf>,
}

impl<W: Write> Packer<W> {
    fn new(out: W, compression: Compression) -> Self {
        let compressor = Compressor::new(Hashing::new(out), compression);
        let tar = tar::Builder::new(Hashing::new(compressor));
        let dirs = HashSet::new();
        Packer { tar, dirs }
    }

    fn finish(self) -> Result<LayerDigests, PackError> {
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
    fn parents(&mut self, rel: &Path) -> Result<(), PackError> {
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
    fn tree(&mut self, root: &Path, links: &mut Links) -> Result<(), PackError> {
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

    fn dir(&mut self, rel: &Path, mode: u32) -> io::Result<()> {
        // The trailing slash is what tar tools print and expect for directories.
        let mut name = rel.as_os_str().to_owned();
        name.push("/");
        let mut header = header(EntryType::Directory, mode, 0);
        self.tar.append_data(&mut header, name, io::empty())
    }

    fn data(&mut self, rel: &Path, mode: u32, size: u64, data: impl Read) -> io::Result<()> {
        self.tar
            .append_data(&mut header(EntryType::Regular, mode, size), rel, data)
    }

    fn link(
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

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::os::unix::fs::{symlink, PermissionsExt};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// (path, type, link target, mode) of each entry; asserts the pinned metadata on the way.
    fn listing(layer: &[u8]) -> io::Result<Vec<(String, EntryType, String, u32)>> {
        let mut archive = tar::Archive::new(GzDecoder::new(layer));
        let mut out = Vec::new();
        for entry in archive.entries()? {
            let entry = entry?;
            let h = entry.header();
            assert_eq!((h.mtime()?, h.uid()?, h.gid()?), (1, 0, 0));
            assert_eq!(h.username_bytes().unwrap_or_default(), b"");
            let link = entry
                .link_name()?
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            out.push((path, h.entry_type(), link, h.mode()?));
        }
        Ok(out)
    }

    fn pack(roots: &[PathBuf]) -> Result<(Vec<u8>, LayerDigests), PackError> {
        let mut out = Vec::new();
        let digests = pack_paths(roots, &mut out, Compression::default())?;
        Ok((out, digests))
    }

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// root/{a/c, a-b (0555), b}: names chosen so byte order and component order differ.
    fn sample() -> io::Result<(tempfile::TempDir, PathBuf, String)> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("a"))?;
        fs::write(root.join("a/c"), b"c")?;
        fs::write(root.join("a-b"), b"#!/bin/sh\n")?;
        fs::set_permissions(root.join("a-b"), fs::Permissions::from_mode(0o555))?;
        fs::write(root.join("b"), vec![7u8; 100_000])?;
        let prefix = root
            .strip_prefix("/")
            .unwrap_or(&root)
            .display()
            .to_string();
        Ok((tmp, root, prefix))
    }

    #[test]
    fn same_input_same_bytes_and_digests_match() -> TestResult {
        let (_tmp, root, _) = sample()?;
        let (bytes, digests) = pack(std::slice::from_ref(&root))?;
        assert_eq!(pack(&[root])?, (bytes.clone(), digests.clone()));
        assert_eq!(digests.digest, sha(&bytes));
        assert_eq!(digests.size, bytes.len() as u64);
        let mut raw = Vec::new();
        GzDecoder::new(&bytes[..]).read_to_end(&mut raw)?;
        assert_eq!(digests.diff_id, sha(&raw));
        Ok(())
    }

    #[test]
    fn entries_sorted_with_parents_once() -> TestResult {
        let (tmp, root, prefix) = sample()?;
        fs::write(tmp.path().join("zz"), b"x")?;
        let (bytes, _) = pack(&[tmp.path().join("zz"), root.clone(), root.join("a")])?;
        let paths: Vec<String> = listing(&bytes)?.into_iter().map(|e| e.0).collect();
        let mut parents: Vec<String> = Vec::new();
        for dir in root.ancestors().skip(1).filter(|d| d.parent().is_some()) {
            parents.insert(0, format!("{}/", dir.strip_prefix("/")?.display()));
        }
        let tmp_dir = parents.last().ok_or("no parents")?.clone();
        let mut want = parents;
        want.extend(["/", "/a/", "/a/c", "/a-b", "/b"].map(|rest| format!("{prefix}{rest}")));
        want.push(format!("{tmp_dir}zz"));
        assert_eq!(paths, want);
        Ok(())
    }

    #[test]
    fn modes_and_symlinks_kept_long_names_handled() -> TestResult {
        let (_tmp, root, prefix) = sample()?;
        let long = "x".repeat(150);
        symlink(format!("/nix/store/{long}"), root.join(&long))?;
        let entries = listing(&pack(&[root])?.0)?;
        let find = |p: &str| entries.iter().find(|e| e.0 == format!("{prefix}/{p}"));
        assert_eq!(find("a-b").map(|e| e.3), Some(0o555));
        let link = find(&long).ok_or("long symlink missing")?;
        assert_eq!(
            (link.1, link.2.clone()),
            (EntryType::Symlink, format!("/nix/store/{long}"))
        );
        Ok(())
    }

    #[test]
    fn hard_links_stored_once() -> TestResult {
        let (_tmp, root, prefix) = sample()?;
        fs::hard_link(root.join("b"), root.join("c"))?;
        let entries = listing(&pack(&[root])?.0)?;
        let b = format!("{prefix}/b");
        let kinds: Vec<_> = entries
            .iter()
            .filter(|e| e.0 == b || e.0 == format!("{prefix}/c"))
            .collect();
        assert_eq!(kinds.len(), 2);
        assert_eq!(kinds[0].1, EntryType::Regular);
        assert_eq!((kinds[1].1, &kinds[1].2), (EntryType::Link, &b));
        Ok(())
    }

    fn dir(path: &str, mode: u32) -> Entry {
        Entry::Dir {
            path: path.into(),
            mode,
        }
    }

    fn packed(entries: &[Entry]) -> Result<Vec<u8>, PackError> {
        let mut out = Vec::new();
        pack_entries(entries, &mut out, Compression::default())?;
        Ok(out)
    }

    #[test]
    fn pack_entries_sorted_whatever_the_input_order() -> TestResult {
        let (path, target) = ("usr/bin/env".into(), "/nix/store/x/bin/env".into());
        let data = b"root:x:0:0::/:\n".to_vec();
        let file = Entry::File {
            path: "etc/passwd".into(),
            mode: 0o644,
            data,
        };
        let mut entries = vec![
            Entry::Symlink { path, target },
            file,
            dir("tmp", 0o1777),
            dir("etc", 0o755),
        ];
        let first = packed(&entries)?;
        entries.reverse();
        assert_eq!(first, packed(&entries)?);
        let got: Vec<(String, u32)> = listing(&first)?.into_iter().map(|e| (e.0, e.3)).collect();
        let want = [
            "etc/",
            "etc/passwd",
            "tmp/",
            "usr/",
            "usr/bin/",
            "usr/bin/env",
        ];
        let modes = [0o755, 0o644, 0o1777, 0o755, 0o755, 0o777];
        assert_eq!(
            got,
            want.map(String::from)
                .into_iter()
                .zip(modes)
                .collect::<Vec<_>>()
        );
        Ok(())
    }

    /// Yields one byte per read, like a slow network stream.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn layer_writer_bytes_do_not_depend_on_read_sizes() -> TestResult {
        let data: Vec<u8> = (0..300_000u64).map(|i| (i * i % 251) as u8).collect();
        let write = |reader: &mut dyn Read| -> Result<(Vec<u8>, LayerDigests), PackError> {
            let mut out = Vec::new();
            let mut writer = LayerWriter::new(&mut out, Compression::default());
            writer.dir(Path::new("nix/store/x"), 0o555)?;
            writer.file(Path::new("nix/store/x/f"), 0o444, data.len() as u64, reader)?;
            writer.symlink(Path::new("nix/store/x/l"), "f")?;
            let digests = writer.finish()?;
            Ok((out, digests))
        };
        let (bytes, digests) = write(&mut &data[..])?;
        // The digest covers every byte; comparing it keeps a failure's output short.
        assert_eq!(digests, write(&mut Trickle(&data))?.1);
        let entries = listing(&bytes)?;
        let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let want = [
            "nix/",
            "nix/store/",
            "nix/store/x/",
            "nix/store/x/f",
            "nix/store/x/l",
        ];
        assert_eq!(paths, want);
        let short = write(&mut &data[..10]).err().ok_or("short file packed")?;
        assert!(short.to_string().contains("nix/store/x/f"), "{short}");
        Ok(())
    }

    #[test]
    fn bad_inputs_error_naming_the_path() -> TestResult {
        let (tmp, root, _) = sample()?;
        let missing = tmp.path().join("missing");
        let err = pack(std::slice::from_ref(&missing))
            .err()
            .ok_or("missing root packed")?;
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        let socket = root.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket)?;
        let err = pack(&[root]).err().ok_or("socket packed")?;
        assert!(
            matches!(err, PackError::Special { ref path } if *path == socket),
            "{err}"
        );
        for bad in ["/abs", "a/../b", "", "./a"] {
            assert!(packed(&[dir(bad, 0o755)]).is_err(), "{bad}");
        }
        assert!(packed(&[dir("a", 0o755), dir("a", 0o755)]).is_err());
        let below_file = [
            Entry::Symlink {
                path: "a".into(),
                target: "b".into(),
            },
            dir("a/c", 0o755),
        ];
        assert!(packed(&below_file).is_err());
        Ok(())
    }
}
