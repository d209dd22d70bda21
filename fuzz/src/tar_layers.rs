//! The layer writer: any sequence of entries it accepts reads back, with the `tar` crate, as
//! exactly those entries (plus the parent directories it adds), and its digests are those of
//! the bytes it wrote.

use arbitrary::{Arbitrary, Unstructured};
use nixery_core::pack::{Compression, LayerWriter};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Arbitrary, Debug)]
enum Op {
    Dir {
        path: Vec<Vec<u8>>,
        mode: u16,
    },
    File {
        path: Vec<Vec<u8>>,
        mode: u16,
        contents: Vec<u8>,
    },
    Symlink {
        path: Vec<Vec<u8>>,
        target: Vec<u8>,
    },
}

#[derive(Debug, PartialEq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
}

fn path_of(parts: &[Vec<u8>]) -> PathBuf {
    parts
        .iter()
        .map(|p| std::ffi::OsStr::from_bytes(p))
        .collect()
}

pub fn tar_round_trip(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(zstd) = bool::arbitrary(&mut input) else {
        return;
    };
    let Ok(ops) = Vec::<Op>::arbitrary(&mut input) else {
        return;
    };
    let compression = match zstd {
        true => Compression::Zstd { level: 1 },
        false => Compression::Gzip { level: 1 },
    };
    let mut out = Vec::new();
    let mut writer = LayerWriter::new(&mut out, compression);
    let mut expected: Vec<(PathBuf, u32, Kind)> = Vec::new();
    for op in ops {
        let written = match &op {
            Op::Dir { path, mode } => writer.dir(&path_of(path), u32::from(*mode)),
            Op::File {
                path,
                mode,
                contents,
            } => writer.file(
                &path_of(path),
                u32::from(*mode),
                contents.len() as u64,
                &contents[..],
            ),
            Op::Symlink { path, target } => {
                writer.symlink(&path_of(path), std::ffi::OsStr::from_bytes(target))
            }
        };
        if written.is_err() {
            return; // refused input: nothing to compare (the writer is not reused)
        }
        expected.push(match op {
            Op::Dir { path, mode } => (path_of(&path), u32::from(mode) & 0o7777, Kind::Dir),
            Op::File {
                path,
                mode,
                contents,
            } => (
                path_of(&path),
                u32::from(mode) & 0o7777,
                Kind::File(contents),
            ),
            Op::Symlink { path, target } => (path_of(&path), 0o777, link(&target)),
        });
    }
    let Ok(digests) = writer.finish() else {
        return;
    };
    assert_eq!(digests.size, out.len() as u64);
    assert_eq!(digests.digest.hex(), hex(&Sha256::digest(&out)));
    let mut tar = Vec::new();
    let read = match zstd {
        true => {
            zstd::stream::read::Decoder::new(&out[..]).and_then(|mut d| d.read_to_end(&mut tar))
        }
        false => flate2::read::MultiGzDecoder::new(&out[..]).read_to_end(&mut tar),
    };
    read.expect("the layer decompresses");
    assert_eq!(digests.diff_id.hex(), hex(&Sha256::digest(&tar)));
    let actual = entries(&tar);
    // Added parents are directories of mode 0755 not among the entries written.
    let written: Vec<&Path> = expected.iter().map(|(p, _, _)| p.as_path()).collect();
    let actual: Vec<_> = actual
        .into_iter()
        .filter(|(p, mode, kind)| {
            !(*kind == Kind::Dir && *mode == 0o755 && !written.contains(&p.as_path()))
        })
        .collect();
    assert_eq!(actual, expected);
}

fn entries(tar: &[u8]) -> Vec<(PathBuf, u32, Kind)> {
    let mut archive = tar::Archive::new(tar);
    let mut all = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        // Paths compare by components, so a directory's trailing '/' does not matter.
        let path = entry.path().expect("a path").into_owned();
        let mode = entry.header().mode().expect("a mode");
        let kind = match entry.header().entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular => {
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).expect("contents");
                Kind::File(contents)
            }
            tar::EntryType::Symlink => link(&entry.link_name_bytes().expect("a target")),
            other => panic!("unexpected entry type {other:?}"),
        };
        all.push((path, mode, kind));
    }
    all
}

/// A symlink target as the tar crate stores it: by path components, so `a//b`, `./a` and
/// `a/` become `a/b`, `a` and `a` (the same link), and `/` becomes `//` (also the same).
fn link(target: &[u8]) -> Kind {
    let path = Path::new(std::ffi::OsStr::from_bytes(target));
    let kept = path
        .components()
        .filter(|c| *c != std::path::Component::CurDir);
    Kind::Symlink(kept.collect::<PathBuf>().as_os_str().as_bytes().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
