//! The NAR reader: whatever it accepts, written back as a NAR, is exactly the bytes it read
//! (NARs are canonical). Its memory is capped by the limits in `nixery_core::binary_cache::nar`;
//! `fuzz/run.sh` runs this target with libFuzzer's `-malloc_limit_mb` to catch any that slips.

use nixery_core::binary_cache::{read_nar, NarSink};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const ROOT: &str = "/nix/store/00000000000000000000000000000000-fuzz";

enum Node {
    File { executable: bool, contents: Vec<u8> },
    Symlink(Vec<u8>),
    Dir(BTreeMap<Vec<u8>, Node>),
}

/// Rebuilds the tree from the reader's calls.
struct Tree {
    root: Option<Node>,
}

impl Tree {
    fn put(&mut self, path: &Path, node: Node) -> io::Result<()> {
        let rel = path.strip_prefix(ROOT).expect("paths are under the root");
        let names: Vec<PathBuf> = rel
            .components()
            .map(|c| PathBuf::from(c.as_os_str()))
            .collect();
        let Some((last, parents)) = names.split_last() else {
            assert!(self.root.is_none(), "two roots");
            self.root = Some(node);
            return Ok(());
        };
        let mut dir = self.root.as_mut().expect("a root first");
        for name in parents {
            let Node::Dir(children) = dir else {
                panic!("{} is inside a non-directory", path.display())
            };
            dir = children
                .get_mut(name.as_os_str().as_bytes())
                .expect("parents come first");
        }
        let Node::Dir(children) = dir else {
            panic!("{} is inside a non-directory", path.display())
        };
        let old = children.insert(last.as_os_str().as_bytes().to_vec(), node);
        assert!(old.is_none(), "{} twice", path.display());
        Ok(())
    }
}

impl NarSink for Tree {
    fn directory(&mut self, path: &Path) -> io::Result<()> {
        self.put(path, Node::Dir(BTreeMap::new()))
    }
    fn file(
        &mut self,
        path: &Path,
        executable: bool,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let mut contents = Vec::new();
        data.read_to_end(&mut contents)?;
        assert_eq!(contents.len() as u64, size, "{}", path.display());
        self.put(
            path,
            Node::File {
                executable,
                contents,
            },
        )
    }
    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        self.put(path, Node::Symlink(target.as_os_str().as_bytes().to_vec()))
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.resize(out.len().next_multiple_of(8), 0);
}

fn write(out: &mut Vec<u8>, node: &Node) {
    string(out, b"(");
    string(out, b"type");
    match node {
        Node::File {
            executable,
            contents,
        } => {
            string(out, b"regular");
            if *executable {
                string(out, b"executable");
                string(out, b"");
            }
            string(out, b"contents");
            string(out, contents);
        }
        Node::Symlink(target) => {
            string(out, b"symlink");
            string(out, b"target");
            string(out, target);
        }
        Node::Dir(children) => {
            string(out, b"directory");
            for (name, child) in children {
                string(out, b"entry");
                string(out, b"(");
                string(out, b"name");
                string(out, name);
                string(out, b"node");
                write(out, child);
                string(out, b")");
            }
        }
    }
    string(out, b")");
}

pub fn nar(data: &[u8]) {
    let mut input = data;
    let mut tree = Tree { root: None };
    if read_nar(&mut input, Path::new(ROOT), &mut tree).is_err() {
        return;
    }
    let consumed = data.len() - input.len();
    let mut out = Vec::new();
    string(&mut out, b"nix-archive-1");
    write(
        &mut out,
        tree.root.as_ref().expect("an accepted NAR has a root"),
    );
    assert!(
        out == data[..consumed],
        "the NAR read back differs from its bytes"
    );
}
