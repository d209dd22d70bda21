//! Tests of the packer: determinism, ordering, modes, links and bad inputs.

use super::*;
use flate2::read::GzDecoder;
use std::fs;
use std::io::Read;
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

fn sha(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
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

/// Found by the tar_round_trip fuzz target: a symlink written where a parent directory had
/// been added made a layer with both (unpacking replaces the directory and its contents).
#[test]
fn layer_writer_refuses_a_path_twice_whatever_its_kind() -> TestResult {
    type Steps = dyn Fn(&mut LayerWriter<Vec<u8>>) -> Result<(), PackError>;
    let refused = |steps: &Steps| {
        let mut writer = LayerWriter::new(Vec::new(), Compression::default());
        steps(&mut writer).is_err()
    };
    assert!(refused(&|w| {
        w.file(Path::new("a/b"), 0o644, 0, &b""[..])?;
        w.symlink(Path::new("a"), "x")
    }));
    assert!(refused(&|w| {
        w.symlink(Path::new("a"), "x")?;
        w.file(Path::new("a/b"), 0o644, 0, &b""[..])
    }));
    assert!(refused(&|w| {
        w.file(Path::new("a"), 0o644, 0, &b""[..])?;
        w.dir(Path::new("a"), 0o755)
    }));
    assert!(refused(&|w| {
        w.symlink(Path::new("a"), "x")?;
        w.symlink(Path::new("a"), "y")
    }));
    assert!(!refused(&|w| {
        w.dir(Path::new("a"), 0o755)?;
        w.file(Path::new("a/b"), 0o644, 0, &b""[..])?;
        w.symlink(Path::new("a/c"), "b")
    }));
    Ok(())
}
