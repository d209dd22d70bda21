//! The synchronous half of NAR streaming: transport bytes -> decompression -> hash check ->
//! NAR parser -> layer writer (or listing). Runs on a blocking thread; the async transport is
//! read through `SyncIoBridge`, so no more than a few buffers of a NAR are in memory at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio_util::io::SyncIoBridge;

use super::nar::{read_nar, HashingReader, NarSink};
use super::{fetch_error, BinaryCacheError, CacheTransport, NarCompression, NarInfo, Result};
use crate::customisation::Tree;
use crate::pack::{Compression, LayerDigests, LayerWriter, PackError};

/// Store directories and files have these modes in a Nix store, and so in `pack_paths` layers.
const DIR_MODE: u32 = 0o555;
const FILE_MODE: u32 = 0o444;
const EXEC_MODE: u32 = 0o555;

/// Pack the NARs of `infos` into one layer; the listings of the store paths in `list` are
/// taken on the way (for the customisation layer), so no NAR is ever fetched twice.
pub(super) fn pack<W: Write>(
    handle: &Handle,
    transport: Arc<dyn CacheTransport>,
    infos: &[NarInfo],
    out: W,
    compression: Compression,
    list: &BTreeSet<String>,
) -> Result<(LayerDigests, Vec<(String, Tree)>)> {
    let mut writer = LayerWriter::new(out, compression);
    let mut trees = Vec::new();
    for info in infos {
        let root = info.store_path.trim_start_matches('/');
        let listing = list.contains(&info.store_path);
        let mut sink = LayerSink {
            writer: &mut writer,
            error: None,
            root: Path::new(root),
            tree: listing.then_some(TreeSink { root: None }),
        };
        let streamed = stream_nar(handle, &*transport, info, Path::new(root), &mut sink);
        if let Some(source) = sink.error {
            let path = info.store_path.clone();
            return Err(BinaryCacheError::Pack { path, source });
        }
        streamed?;
        if let Some(tree) = sink.tree.and_then(|t| t.root) {
            trees.push((info.store_path.clone(), tree));
        }
    }
    let digests = writer.finish().map_err(|source| BinaryCacheError::Pack {
        path: "the layer".into(),
        source,
    })?;
    Ok((digests, trees))
}

pub(super) fn tree(
    handle: &Handle,
    transport: Arc<dyn CacheTransport>,
    info: &NarInfo,
) -> Result<Tree> {
    let mut sink = TreeSink { root: None };
    stream_nar(handle, &*transport, info, Path::new(""), &mut sink)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "empty NAR");
    sink.root.ok_or_else(|| BinaryCacheError::Nar {
        path: info.store_path.clone(),
        source: bad(),
    })
}

/// Fetch, decompress, parse and verify one NAR; entries go to `sink` under `root`.
fn stream_nar(
    handle: &Handle,
    transport: &dyn CacheTransport,
    info: &NarInfo,
    root: &Path,
    sink: &mut dyn NarSink,
) -> Result<()> {
    let path = &info.store_path;
    let stream = handle
        .block_on(transport.get(&info.url))
        .map_err(|e| fetch_error(path, e))?;
    let raw = BufReader::with_capacity(
        TRANSPORT_READ,
        SyncIoBridge::new_with_handle(stream, handle.clone()),
    );
    let nar_error = |source| BinaryCacheError::Nar {
        path: path.clone(),
        source,
    };
    // One byte past the signed size is enough to tell a lying narinfo; more is never read, so
    // a hostile cache cannot make us decompress without end.
    let decoded = decompress(info.compression, raw).map_err(nar_error)?;
    let mut nar = HashingReader::new(decoded.take(info.nar_size.saturating_add(1)));
    read_nar(&mut nar, root, sink).map_err(nar_error)?;
    nar.check(info.nar_size, &info.nar_hash).map_err(nar_error)
}

/// Bytes asked of the transport per read. Each read is a hop from this thread to the runtime
/// (and, for `file://`, to tokio's blocking pool and back), which waits for a wake-up on a
/// loaded machine; 1 MiB (tokio's file buffer holds 2 MiB) makes 16 times fewer than 64 KiB.
const TRANSPORT_READ: usize = 1 << 20;

/// Decoder memory limits: xz -9 needs 65 MiB, zstd's largest standard window is 128 MiB;
/// anything asking for more is refused rather than allocated.
const XZ_MEMLIMIT: u64 = 80 << 20;
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

pub(super) fn decompress(
    compression: NarCompression,
    raw: impl Read + 'static,
) -> io::Result<Box<dyn Read>> {
    Ok(match compression {
        NarCompression::None => Box::new(raw),
        NarCompression::Xz => Box::new(xz_decoder(raw, XZ_MEMLIMIT)?),
        NarCompression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(raw)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(decoder)
        }
    })
}

fn xz_decoder<R: Read>(raw: R, memlimit: u64) -> io::Result<liblzma::read::XzDecoder<R>> {
    // Concatenated: parallel xz compressors may write several streams. The xz check (CRC64,
    // 3% of a cold build's CPU) is not verified: the whole NAR's SHA-256 is, against the
    // signed narinfo, so a corrupt stream fails either way.
    let flags = liblzma::stream::CONCATENATED | liblzma::stream::IGNORE_CHECK;
    let stream =
        liblzma::stream::Stream::new_stream_decoder(memlimit, flags).map_err(io::Error::other)?;
    Ok(liblzma::read::XzDecoder::new_stream(raw, stream))
}

/// NAR entries to layer entries, with the store's modes. A packing error is kept whole in
/// `error` (the NAR parser only carries io::Error) so the caller can report it as such.
/// With `tree`, the entries (relative to `root`, the store path) are listed too.
struct LayerSink<'a, W: Write> {
    writer: &'a mut LayerWriter<W>,
    error: Option<PackError>,
    root: &'a Path,
    tree: Option<TreeSink>,
}

impl<W: Write> LayerSink<'_, W> {
    fn keep(&mut self, written: Result<(), PackError>) -> io::Result<()> {
        written.map_err(|e| {
            let message = e.to_string();
            self.error = Some(e);
            io::Error::other(message)
        })
    }

    fn list(&mut self, path: &Path, node: Tree) -> io::Result<()> {
        let Some(tree) = self.tree.as_mut() else {
            return Ok(());
        };
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "entry outside the store path");
        tree.insert(path.strip_prefix(self.root).map_err(|_| bad())?, node)
    }
}

impl<W: Write> NarSink for LayerSink<'_, W> {
    fn directory(&mut self, path: &Path) -> io::Result<()> {
        let written = self.writer.dir(path, DIR_MODE);
        self.keep(written)?;
        self.list(path, Tree::Dir(BTreeMap::new()))
    }

    fn file(&mut self, path: &Path, x: bool, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mode = if x { EXEC_MODE } else { FILE_MODE };
        let written = self.writer.file(path, mode, size, data);
        self.keep(written)?;
        self.list(path, Tree::Leaf)
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        let written = self.writer.symlink(path, target);
        self.keep(written)?;
        self.list(path, Tree::Leaf)
    }
}

/// Builds a [`Tree`]; entries arrive parents first, so each one's parent already exists.
struct TreeSink {
    root: Option<Tree>,
}

impl TreeSink {
    fn insert(&mut self, path: &Path, node: Tree) -> io::Result<()> {
        let orphan = || io::Error::new(io::ErrorKind::InvalidData, "entry outside a directory");
        let mut names = path.components().map(|c| match c {
            Component::Normal(name) => name.to_string_lossy().into_owned(),
            _ => String::new(),
        });
        let Some(last) = names.next_back() else {
            self.root = Some(node);
            return Ok(());
        };
        let mut dir = self.root.as_mut().ok_or_else(orphan)?;
        for name in names {
            dir = match dir {
                Tree::Dir(children) => children.get_mut(&name).ok_or_else(orphan)?,
                Tree::Leaf => return Err(orphan()),
            };
        }
        match dir {
            Tree::Dir(children) => children
                .insert(last, node)
                .map_or(Ok(()), |_| Err(orphan())),
            Tree::Leaf => Err(orphan()),
        }
    }
}

impl NarSink for TreeSink {
    fn directory(&mut self, path: &Path) -> io::Result<()> {
        self.insert(path, Tree::Dir(BTreeMap::new()))
    }

    fn file(&mut self, path: &Path, _: bool, _: u64, data: &mut dyn Read) -> io::Result<()> {
        io::copy(data, &mut io::sink())?;
        self.insert(path, Tree::Leaf)
    }

    fn symlink(&mut self, path: &Path, _: &Path) -> io::Result<()> {
        self.insert(path, Tree::Leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary_cache::FileTransport;
    use sha2::{Digest as _, Sha256};

    /// A NAR of one regular file holding `size` bytes.
    fn file_nar(size: usize) -> Vec<u8> {
        let mut nar = Vec::new();
        let mut s = |bytes: &[u8]| {
            nar.extend((bytes.len() as u64).to_le_bytes());
            nar.extend(bytes);
            nar.resize(nar.len().div_ceil(8) * 8, 0);
        };
        for t in ["nix-archive-1", "(", "type", "regular", "contents"] {
            s(t.as_bytes());
        }
        s(&vec![7u8; size]);
        s(b")");
        nar
    }

    fn info(nar: &[u8], nar_size: u64) -> NarInfo {
        NarInfo {
            store_path: format!("/nix/store/{}-x", "a".repeat(32)),
            url: "nar/x.nar".into(),
            compression: NarCompression::None,
            file_hash: None,
            file_size: None,
            nar_hash: Sha256::digest(nar).into(),
            nar_size,
            references: vec![],
            deriver: None,
            sigs: vec![],
        }
    }

    /// A NAR longer than its narinfo says is refused after NarSize + 1 bytes, never read
    /// (or decompressed) to its end.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_nar_longer_than_nar_size_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("nar")).expect("mkdir");
        let nar = file_nar(4 << 20);
        std::fs::write(dir.path().join("nar/x.nar"), &nar).expect("write");
        let transport: Arc<dyn CacheTransport> = Arc::new(FileTransport::new(dir.path()));
        let handle = Handle::current();
        let lying = info(&nar, 4096);
        let honest = info(&nar, nar.len() as u64);
        let (lie, truth) = tokio::task::spawn_blocking(move || {
            (
                tree(&handle, transport.clone(), &lying),
                tree(&handle, transport, &honest),
            )
        })
        .await
        .expect("join");
        let err = lie.expect_err("longer than NarSize").to_string();
        assert!(err.contains("NAR"), "{err}");
        assert_eq!(truth.expect("the honest narinfo"), Tree::Leaf);
    }

    #[test]
    fn xz_streams_needing_more_memory_than_the_limit_are_refused() {
        let data = vec![42u8; 1 << 16];
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(&data).expect("compress");
        let xz = enc.finish().expect("finish");
        let mut out = Vec::new();
        let small = xz_decoder(&xz[..], 1 << 20)
            .expect("decoder")
            .read_to_end(&mut out);
        assert!(small.is_err(), "xz -6 needs about 9 MiB to decode");
        out.clear();
        xz_decoder(&xz[..], XZ_MEMLIMIT)
            .expect("decoder")
            .read_to_end(&mut out)
            .expect("within the limit");
        assert_eq!(out, data);
    }
}
