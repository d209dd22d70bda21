//! The customisation layer: the requested packages merged into one symlink
//! forest at the image root (like Nix's `symlinkJoin`: real directories,
//! symlinked files), plus `/tmp`, `/usr/bin/env` and the CA bundle links.
//!
//! It works on listings (`Tree`) rather than on the filesystem so that the
//! same code serves the local store and a binary cache's NAR listings.

use crate::image::CA_BUNDLE;
use crate::pack::Entry;
use std::collections::BTreeMap;
use std::path::Path;

/// A listing of a store path's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    Dir(BTreeMap<String, Tree>),
    /// A file or a symlink: linked to, never descended into.
    Leaf,
}

impl Tree {
    /// List a local directory without following symlinks.
    pub fn read(path: &Path) -> std::io::Result<Tree> {
        let meta = std::fs::symlink_metadata(path)?;
        if !meta.is_dir() {
            return Ok(Tree::Leaf);
        }
        let mut children = BTreeMap::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            children.insert(name, Tree::read(&entry.path())?);
        }
        Ok(Tree::Dir(children))
    }
}

/// A merged node: a real directory, or a link to `target`.
enum Node {
    Dir(BTreeMap<String, Node>),
    Link(String),
}

/// Merge `packages` (store path, listing) in order; the first package to
/// claim a path keeps it, as in `symlinkJoin`.
fn merge(packages: &[(String, Tree)]) -> BTreeMap<String, Node> {
    let mut root = BTreeMap::new();
    for (store_path, tree) in packages {
        if let Tree::Dir(children) = tree {
            merge_into(&mut root, children, store_path);
        }
    }
    root
}

fn merge_into(dest: &mut BTreeMap<String, Node>, src: &BTreeMap<String, Tree>, prefix: &str) {
    for (name, tree) in src {
        let target = format!("{prefix}/{name}");
        match (dest.get_mut(name), tree) {
            (None, Tree::Dir(children)) => {
                let mut sub = BTreeMap::new();
                merge_into(&mut sub, children, &target);
                dest.insert(name.clone(), Node::Dir(sub));
            }
            (None, Tree::Leaf) => {
                dest.insert(name.clone(), Node::Link(target));
            }
            (Some(Node::Dir(sub)), Tree::Dir(children)) => merge_into(sub, children, &target),
            // Conflict: the earlier package wins.
            (Some(_), _) => {}
        }
    }
}

fn flatten(nodes: &BTreeMap<String, Node>, prefix: &str, out: &mut Vec<Entry>) {
    for (name, node) in nodes {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        match node {
            Node::Dir(children) => {
                out.push(Entry::Dir {
                    path: path.clone(),
                    mode: 0o755,
                });
                flatten(children, &path, out);
            }
            Node::Link(target) => out.push(Entry::Symlink {
                path,
                target: target.clone(),
            }),
        }
    }
}

fn has(nodes: &BTreeMap<String, Node>, path: &str) -> bool {
    let mut cur = nodes;
    let mut parts = path.split('/').peekable();
    while let Some(p) = parts.next() {
        match cur.get(p) {
            Some(Node::Dir(sub)) => cur = sub,
            Some(Node::Link(_)) => return parts.peek().is_none(),
            None => return false,
        }
    }
    true
}

/// Insert a link at `path`, creating parent directories, unless the path is taken.
fn add_link(nodes: &mut BTreeMap<String, Node>, path: &str, target: &str) {
    let (dirs, leaf) = path.rsplit_once('/').unwrap_or(("", path));
    let mut cur = nodes;
    for d in dirs.split('/').filter(|d| !d.is_empty()) {
        let next = cur
            .entry(d.to_string())
            .or_insert_with(|| Node::Dir(BTreeMap::new()));
        match next {
            Node::Dir(sub) => cur = sub,
            Node::Link(_) => return,
        }
    }
    cur.entry(leaf.to_string())
        .or_insert_with(|| Node::Link(target.to_string()));
}

/// The entries of the customisation layer for `packages` in the given order.
pub fn customisation_entries(packages: &[(String, Tree)]) -> Vec<Entry> {
    let mut root = merge(packages);
    if has(&root, "bin/env") {
        add_link(&mut root, "usr/bin/env", "/bin/env");
    }
    let bundle = CA_BUNDLE.trim_start_matches('/');
    if has(&root, bundle) {
        add_link(&mut root, "etc/ssl/certs/ca-certificates.crt", CA_BUNDLE);
    }
    let mut out = vec![Entry::Dir {
        path: "tmp".into(),
        mode: 0o1777,
    }];
    root.remove("tmp");
    flatten(&root, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(children: &[(&str, Tree)]) -> Tree {
        Tree::Dir(
            children
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        )
    }

    fn summary(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Dir { path, mode } => format!("d {path} {mode:o}"),
                Entry::Symlink { path, target } => format!("l {path} -> {target}"),
                Entry::File { path, .. } => format!("f {path}"),
            })
            .collect()
    }

    #[test]
    fn forest_merges_directories_and_links_files() {
        let coreutils = (
            "/nix/store/c-coreutils".to_string(),
            dir(&[("bin", dir(&[("env", Tree::Leaf), ("ls", Tree::Leaf)]))]),
        );
        let git = (
            "/nix/store/g-git".to_string(),
            dir(&[
                ("bin", dir(&[("git", Tree::Leaf), ("ls", Tree::Leaf)])),
                ("share", Tree::Leaf),
            ]),
        );
        let cacert = (
            "/nix/store/x-cacert".to_string(),
            dir(&[(
                "etc",
                dir(&[(
                    "ssl",
                    dir(&[("certs", dir(&[("ca-bundle.crt", Tree::Leaf)]))]),
                )]),
            )]),
        );
        let got = summary(&customisation_entries(&[coreutils, git, cacert]));
        let want = vec![
            "d tmp 1777",
            "d bin 755",
            "l bin/env -> /nix/store/c-coreutils/bin/env",
            "l bin/git -> /nix/store/g-git/bin/git",
            "l bin/ls -> /nix/store/c-coreutils/bin/ls",
            "d etc 755",
            "d etc/ssl 755",
            "d etc/ssl/certs 755",
            "l etc/ssl/certs/ca-bundle.crt -> /nix/store/x-cacert/etc/ssl/certs/ca-bundle.crt",
            "l etc/ssl/certs/ca-certificates.crt -> /etc/ssl/certs/ca-bundle.crt",
            "l share -> /nix/store/g-git/share",
            "d usr 755",
            "d usr/bin 755",
            "l usr/bin/env -> /bin/env",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn no_env_link_without_env_and_leaf_packages_ignored() {
        let file_pkg = ("/nix/store/f-file".to_string(), Tree::Leaf);
        let got = summary(&customisation_entries(&[file_pkg]));
        assert_eq!(got, vec!["d tmp 1777"]);
    }

    #[test]
    fn reads_a_local_tree() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(d.path().join("bin")).expect("mkdir");
        std::fs::write(d.path().join("bin/x"), "x").expect("write");
        std::os::unix::fs::symlink("x", d.path().join("bin/y")).expect("symlink");
        let t = Tree::read(d.path()).expect("read");
        assert_eq!(
            t,
            dir(&[("bin", dir(&[("x", Tree::Leaf), ("y", Tree::Leaf)]))])
        );
    }
}
