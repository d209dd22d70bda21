//! The synchronous half of NAR streaming: transport bytes -> decompression -> hash check ->
//! NAR parser -> layer writer (or listing). Runs on a blocking thread; the async transport is
//! read through `SyncIoBridge`, so no more than a few buffers of a NAR are in memory at once.

use std::collections::BTreeMap;
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

pub(super) fn pack<W: Write>(
    handle: &Handle,
    transport: Arc<dyn CacheTransport>,
    infos: &[NarInfo],
    out: W,
    compression: Compression,
) -> Result<LayerDigests> {
    let mut writer = LayerWriter::new(out, compression);
    for info in infos {
        let mut sink = LayerSink {
            writer: &mut writer,
            error: None,
        };
        let root = info.store_path.trim_start_matches('/');
        let streamed = stream_nar(handle, &*transport, info, Path::new(root), &mut sink);
        if let Some(source) = sink.error {
            let path = info.store_path.clone();
            return Err(BinaryCacheError::Pack { path, source });
        }
        streamed?;
    }
    writer.finish().map_err(|source| BinaryCacheError::Pack {
        path: "the layer".into(),
        source,
    })
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
        64 * 1024,
        SyncIoBridge::new_with_handle(stream, handle.clone()),
    );
    let nar_error = |source| BinaryCacheError::Nar {
        path: path.clone(),
        source,
    };
    let mut nar = HashingReader::new(decompress(info.compression, raw).map_err(nar_error)?);
    read_nar(&mut nar, root, sink).map_err(nar_error)?;
    nar.check(info.nar_size, &info.nar_hash).map_err(nar_error)
}

fn decompress(compression: NarCompression, raw: impl Read + 'static) -> io::Result<Box<dyn Read>> {
    Ok(match compression {
        NarCompression::None => Box::new(raw),
        // Multi-stream, as parallel xz compressors may concatenate streams.
        NarCompression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(raw)),
        NarCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
    })
}

/// NAR entries to layer entries, with the store's modes. A packing error is kept whole in
/// `error` (the NAR parser only carries io::Error) so the caller can report it as such.
struct LayerSink<'a, W: Write> {
    writer: &'a mut LayerWriter<W>,
    error: Option<PackError>,
}

impl<W: Write> LayerSink<'_, W> {
    fn keep(&mut self, written: Result<(), PackError>) -> io::Result<()> {
        written.map_err(|e| {
            let message = e.to_string();
            self.error = Some(e);
            io::Error::other(message)
        })
    }
}

impl<W: Write> NarSink for LayerSink<'_, W> {
    fn directory(&mut self, path: &Path) -> io::Result<()> {
        let written = self.writer.dir(path, DIR_MODE);
        self.keep(written)
    }

    fn file(&mut self, path: &Path, x: bool, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mode = if x { EXEC_MODE } else { FILE_MODE };
        let written = self.writer.file(path, mode, size, data);
        self.keep(written)
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        let written = self.writer.symlink(path, target);
        self.keep(written)
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
