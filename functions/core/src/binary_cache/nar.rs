//! A streaming reader for NAR (Nix ARchive) files.
//!
//! Hand-written rather than the `nix-nar` crate because that crate takes names and symlink
//! targets as UTF-8 only (NARs carry arbitrary bytes) and allocates whatever length a string
//! header claims; the format is small enough (about a page of grammar) to own:
//!
//! ```text
//! nar       = str("nix-archive-1") node
//! node      = str("(") str("type") (regular | symlink | directory) str(")")
//! regular   = str("regular") [str("executable") str("")] str("contents") contents
//! symlink   = str("symlink") str("target") str(target)
//! directory = str("directory") { str("entry") str("(") str("name") str(name)
//!                                str("node") node str(")") }
//! str(s)    = u64-le(len(s)) s zero-padding-to-8
//! ```
//!
//! Entries come depth-first with names strictly ascending by bytes, the same order
//! `pack::pack_paths` walks a directory in. File contents are handed to the sink as a reader
//! over the stream, so memory stays bounded whatever the file size.

use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Longest name, symlink target or token we accept; Nix's own limit for names is 255 bytes and
/// for targets PATH_MAX, so this only stops a hostile length from allocating gigabytes.
const MAX_STRING: u64 = 64 * 1024;
/// Deepest directory nesting accepted. Each open directory keeps its path, so depth times
/// path length bounds the parser's memory; real store paths nest a few dozen levels.
pub const MAX_DEPTH: usize = 256;
/// Longest entry path accepted (Linux's PATH_MAX): a layer could not be unpacked past it.
pub const MAX_PATH: usize = 4096;

/// Where the entries of a NAR go; `path` is the root path given to [`read_nar`] joined with
/// the entry's names.
pub trait NarSink {
    fn directory(&mut self, path: &Path) -> io::Result<()>;
    /// `contents` yields exactly `size` bytes unless the stream fails; read it all.
    fn file(
        &mut self,
        path: &Path,
        executable: bool,
        size: u64,
        contents: &mut dyn Read,
    ) -> io::Result<()>;
    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()>;
}

fn bad(reason: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed NAR: {}", reason.into()),
    )
}

/// Parse a whole NAR from `input`, calling `sink` for every entry, with `root` as the path of
/// the top node. Reads exactly the NAR's bytes; the caller checks for trailing data.
pub fn read_nar(input: &mut impl Read, root: &Path, sink: &mut dyn NarSink) -> io::Result<()> {
    let mut nar = Parser { input };
    nar.expect("nix-archive-1")?;
    // Open directories, innermost last, each with the last child name seen (for the order
    // check). A loop and not recursion, so a deeply nested NAR cannot overflow the stack.
    let mut open: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
    if nar.node(root, sink)? {
        open.push((root.to_path_buf(), None));
    }
    while let Some((dir, last)) = open.last_mut() {
        match nar.string()?.as_slice() {
            b"entry" => {
                nar.expect("(")?;
                nar.expect("name")?;
                let name = nar.string()?;
                check_name(&name, last.as_deref())?;
                nar.expect("node")?;
                let child = dir.join(std::ffi::OsStr::from_bytes(&name));
                if child.as_os_str().len() > MAX_PATH {
                    return Err(bad(format!("entry path longer than {MAX_PATH} bytes")));
                }
                *last = Some(name);
                if nar.node(&child, sink)? {
                    if open.len() >= MAX_DEPTH {
                        return Err(bad(format!("directories nested deeper than {MAX_DEPTH}")));
                    }
                    open.push((child, None));
                } else {
                    nar.expect(")")?;
                }
            }
            b")" => {
                open.pop();
                // Closes the `entry (` this directory was the node of.
                if !open.is_empty() {
                    nar.expect(")")?;
                }
            }
            other => {
                return Err(bad(format!(
                    "expected entry or ')', got {:?}",
                    lossy(other)
                )))
            }
        }
    }
    Ok(())
}

fn check_name(name: &[u8], last: Option<&[u8]>) -> io::Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(bad(format!("invalid entry name {:?}", lossy(name))));
    }
    if last.is_some_and(|last| last >= name) {
        return Err(bad(format!(
            "entry {:?} out of order or repeated",
            lossy(name)
        )));
    }
    Ok(())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Parser<'a, R> {
    input: &'a mut R,
}

impl<R: Read> Parser<'_, R> {
    fn u64(&mut self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        self.input.read_exact(&mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    fn padding(&mut self, len: u64) -> io::Result<()> {
        let mut pad = [0u8; 8];
        let pad = &mut pad[..((8 - len % 8) % 8) as usize];
        self.input.read_exact(pad)?;
        match pad.iter().all(|b| *b == 0) {
            true => Ok(()),
            false => Err(bad("non-zero padding")),
        }
    }

    fn string(&mut self) -> io::Result<Vec<u8>> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(bad(format!("string of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        self.input.read_exact(&mut buf)?;
        self.padding(len)?;
        Ok(buf)
    }

    fn expect(&mut self, token: &str) -> io::Result<()> {
        let got = self.string()?;
        match got == token.as_bytes() {
            true => Ok(()),
            false => Err(bad(format!("expected {token:?}, got {:?}", lossy(&got)))),
        }
    }

    /// One node at `path`. Files and symlinks are read through their closing ')'; for a
    /// directory, returns true with its entries still to read.
    fn node(&mut self, path: &Path, sink: &mut dyn NarSink) -> io::Result<bool> {
        self.expect("(")?;
        self.expect("type")?;
        match self.string()?.as_slice() {
            b"directory" => return sink.directory(path).map(|()| true),
            b"symlink" => {
                self.expect("target")?;
                let target = self.string()?;
                sink.symlink(path, Path::new(std::ffi::OsStr::from_bytes(&target)))?;
            }
            b"regular" => self.regular(path, sink)?,
            other => return Err(bad(format!("unknown node type {:?}", lossy(other)))),
        }
        self.expect(")")?;
        Ok(false)
    }

    fn regular(&mut self, path: &Path, sink: &mut dyn NarSink) -> io::Result<()> {
        let mut token = self.string()?;
        let executable = token == b"executable";
        if executable {
            self.expect("")?;
            token = self.string()?;
        }
        if token != b"contents" {
            return Err(bad(format!(
                "expected \"contents\", got {:?}",
                lossy(&token)
            )));
        }
        let size = self.u64()?;
        let mut contents = (&mut *self.input).take(size);
        sink.file(path, executable, size, &mut contents)?;
        // A sink that stopped early must not leave us mid-file; drain, then insist on it all.
        io::copy(&mut contents, &mut io::sink())?;
        if contents.limit() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "NAR ends inside a file",
            ));
        }
        self.padding(size)
    }
}

/// Hashes and counts what is read through it, to check a NAR against its narinfo.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Ok if nothing follows the NAR and what was read has this size and SHA-256.
    pub fn check(mut self, size: u64, sha256: &[u8; 32]) -> io::Result<()> {
        let mut rest = [0u8; 1];
        if self.read(&mut rest)? != 0 {
            return Err(bad("data after the end of the archive"));
        }
        if self.count != size {
            let msg = format!("NAR size mismatch: got {}, narinfo says {size}", self.count);
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        let got: [u8; 32] = self.hasher.finalize().into();
        match got == *sha256 {
            true => Ok(()),
            false => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "NAR hash mismatch: got sha256:{}, narinfo says sha256:{}",
                    super::nixbase32::encode(&got),
                    super::nixbase32::encode(sha256)
                ),
            )),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test encoder: tokens and contents in NAR's `str` framing.
    #[derive(Default)]
    struct Nar(Vec<u8>);

    impl Nar {
        fn s(mut self, bytes: &[u8]) -> Self {
            self.0.extend((bytes.len() as u64).to_le_bytes());
            self.0.extend(bytes);
            self.0.resize(self.0.len().div_ceil(8) * 8, 0);
            self
        }

        fn t(self, tokens: &[&str]) -> Self {
            tokens.iter().fold(self, |nar, t| nar.s(t.as_bytes()))
        }
    }

    #[derive(Default)]
    struct Record(Vec<String>);

    impl NarSink for Record {
        fn directory(&mut self, path: &Path) -> io::Result<()> {
            self.0.push(format!("d {}", path.display()));
            Ok(())
        }

        fn file(&mut self, path: &Path, x: bool, size: u64, data: &mut dyn Read) -> io::Result<()> {
            let mut text = String::new();
            data.read_to_string(&mut text)?;
            assert_eq!(text.len() as u64, size);
            self.0.push(format!("f {} {x} {text}", path.display()));
            Ok(())
        }

        fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
            self.0
                .push(format!("l {} {}", path.display(), target.display()));
            Ok(())
        }
    }

    fn entry(nar: Nar, name: &str) -> Nar {
        nar.t(&["entry", "(", "name", name, "node", "(", "type"])
    }

    /// root/ { a/ { c: "c" }, a-b: executable "#!", z -> a/c }
    fn sample() -> Nar {
        let nar = Nar::default().t(&["nix-archive-1", "(", "type", "directory"]);
        let nar = entry(nar, "a").t(&["directory"]);
        let nar = entry(nar, "c").t(&["regular", "contents", "c", ")", ")"]);
        let nar = nar.t(&[")", ")"]);
        let nar = entry(nar, "a-b").t(&["regular", "executable", "", "contents", "#!", ")", ")"]);
        entry(nar, "z").t(&["symlink", "target", "a/c", ")", ")", ")"])
    }

    fn parse(bytes: &[u8]) -> io::Result<Vec<String>> {
        let mut sink = Record::default();
        read_nar(&mut &bytes[..], Path::new("r"), &mut sink)?;
        Ok(sink.0)
    }

    #[test]
    fn entries_come_depth_first_with_contents() -> io::Result<()> {
        let want = [
            "d r",
            "d r/a",
            "f r/a/c false c",
            "f r/a-b true #!",
            "l r/z a/c",
        ];
        assert_eq!(parse(&sample().0)?, want);
        let single = Nar::default().t(&["nix-archive-1", "(", "type", "regular"]);
        let single = single.t(&["contents", "hello", ")"]);
        assert_eq!(parse(&single.0)?, ["f r false hello"]);
        Ok(())
    }

    #[test]
    fn malformed_archives_are_errors() {
        let good = sample().0;
        let unsorted = String::from_utf8_lossy(&good).replace("a-b", "0-b");
        let mut bad_padding = good.clone();
        bad_padding[8 + 13] = 1; // inside the padding of "nix-archive-1"
        let huge = Nar::default().t(&["nix-archive-1"]).0;
        let huge = [huge, u64::MAX.to_le_bytes().to_vec()].concat();
        let dotdot = String::from_utf8_lossy(&good).replace("a-b", "..\0");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 8].to_vec(), "truncated"),
            (unsorted.into_bytes(), "out of order"),
            (bad_padding, "padding"),
            (huge, "string of"),
            (dotdot.into_bytes(), "invalid entry name"),
            (Nar::default().t(&["nix-archive-2"]).0, "expected"),
        ];
        for (bytes, why) in cases {
            let err = parse(&bytes)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(why) || (why == "truncated" && err.contains("fill whole buffer")),
                "{why}: {err}"
            );
        }
    }

    /// A NAR of `depth` nested directories named `name`.
    fn nested(depth: usize, name: &str) -> Vec<u8> {
        let mut nar = Nar::default().t(&["nix-archive-1", "(", "type", "directory"]);
        for _ in 0..depth {
            nar = entry(nar, name).t(&["directory"]);
        }
        for _ in 0..depth {
            nar = nar.t(&[")", ")"]);
        }
        nar.t(&[")"]).0
    }

    #[test]
    fn nesting_and_path_length_are_bounded() {
        assert!(parse(&nested(MAX_DEPTH - 1, "d")).is_ok());
        let deep = parse(&nested(MAX_DEPTH + 1, "d")).expect_err("too deep");
        assert!(deep.to_string().contains("nested deeper"), "{deep}");
        let long = parse(&nested(20, &"n".repeat(250))).expect_err("too long");
        assert!(long.to_string().contains("longer than"), "{long}");
    }

    #[test]
    fn hashing_reader_checks_size_hash_and_trailing_data() -> io::Result<()> {
        let nar = sample().0;
        let sha: [u8; 32] = Sha256::digest(&nar).into();
        let run = |bytes: &[u8], size: u64, sha: [u8; 32]| -> io::Result<()> {
            let mut reader = HashingReader::new(bytes);
            read_nar(&mut reader, Path::new("r"), &mut Record::default())?;
            reader.check(size, &sha)
        };
        run(&nar, nar.len() as u64, sha)?;
        let wrong = |r: io::Result<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(wrong(run(&nar, nar.len() as u64, [0; 32])).contains("hash mismatch"));
        assert!(wrong(run(&nar, 8, sha)).contains("size mismatch"));
        let trailing = [&nar[..], &[0u8; 8]].concat();
        assert!(wrong(run(&trailing, nar.len() as u64, sha)).contains("after the end"));
        Ok(())
    }
}
