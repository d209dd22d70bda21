//! The `nixery` subcommands that need no server: pack, layers, help.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use nixery_e2e::harness::{is_digest, nixery, nixery_ok, sha256_digest};
use serde_json::{json, Value};

/// A small tree: files, an executable, a subdirectory, a symlink and an empty directory.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("share/empty")).expect("mkdir");
    std::fs::write(root.join("bin/tool"), "#!/bin/sh\necho tool\n").expect("write");
    std::fs::write(root.join("share/data.txt"), "x".repeat(5000)).expect("write");
    std::fs::write(root.join("README"), "hello\n").expect("write");
    Command::new("chmod")
        .args(["755"])
        .arg(root.join("bin/tool"))
        .status()
        .expect("chmod");
    std::os::unix::fs::symlink("bin/tool", root.join("link")).expect("symlink");
}

fn pack(output: &Path, paths: &[&Path]) -> Value {
    let mut args = vec!["pack", "--output", output.to_str().expect("UTF-8")];
    args.extend(paths.iter().map(|p| p.to_str().expect("UTF-8")));
    let stdout = nixery_ok(&args);
    // The whole output, or else its last line, is the JSON object.
    serde_json::from_str(stdout.trim())
        .or_else(|_| {
            let last = stdout.lines().rfind(|l| !l.trim().is_empty());
            serde_json::from_str(last.unwrap_or_default())
        })
        .unwrap_or_else(|e| panic!("`nixery pack` did not print JSON ({e}):\n{stdout}"))
}

#[test]
fn pack_is_deterministic_and_reports_true_digests() {
    let work = tempfile::tempdir().expect("temp dir");
    let tree = work.path().join("tree");
    make_tree(&tree);
    let out1 = work.path().join("one.tar.gz");
    let out2 = work.path().join("two.tar.gz");

    let first = pack(&out1, &[&tree]);
    // Change mtimes: packing fixes them, so the result must not change.
    let touched = Command::new("touch")
        .args(["-h", "-d", "2001-02-03 04:05:06"])
        .arg(tree.join("README"))
        .arg(tree.join("link"))
        .status()
        .expect("touch");
    assert!(touched.success(), "touch failed");
    let second = pack(&out2, &[&tree]);
    assert_eq!(
        first, second,
        "packing the same tree twice gave different results"
    );

    let bytes = std::fs::read(&out1).expect("read packed layer");
    assert_eq!(
        std::fs::read(&out2).expect("read packed layer"),
        bytes,
        "the two packed files differ"
    );
    let digest = first["digest"].as_str().expect("digest field");
    assert!(is_digest(digest), "bad digest {digest:?}");
    assert_eq!(
        sha256_digest(&bytes),
        digest,
        "digest is not the sha256 of the output"
    );
    assert_eq!(
        first["size"].as_u64(),
        Some(bytes.len() as u64),
        "size field"
    );

    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .expect("output is gzip");
    assert_eq!(
        first["diff_id"].as_str(),
        Some(sha256_digest(&tar).as_str()),
        "diff_id is not the sha256 of the uncompressed tar"
    );
}

fn store_path(i: usize, name: &str) -> String {
    format!(
        "/nix/store/{}-{name}",
        format!("{i:x}").repeat(32).get(..32).unwrap_or_default()
    )
}

/// Runs `nixery layers` on a small graph; returns the layers' contents.
fn layers(graph: &Value, popularity: &Value, budget: usize) -> Vec<Vec<String>> {
    let work = tempfile::tempdir().expect("temp dir");
    let graph_file = work.path().join("graph.json");
    let pop_file = work.path().join("popularity.json");
    std::fs::write(&graph_file, graph.to_string()).expect("write graph");
    std::fs::write(&pop_file, popularity.to_string()).expect("write popularity");
    let budget = budget.to_string();
    let stdout = nixery_ok(&[
        "layers",
        "--graph",
        graph_file.to_str().expect("UTF-8"),
        "--popularity",
        pop_file.to_str().expect("UTF-8"),
        "--budget",
        &budget,
    ]);
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("`nixery layers` did not print JSON ({e}):\n{stdout}"));
    v.as_array()
        .unwrap_or_else(|| panic!("`nixery layers` did not print a list: {v}"))
        .iter()
        .map(|l| {
            l["contents"]
                .as_array()
                .unwrap_or_else(|| panic!("layer without contents: {l}"))
                .iter()
                .map(|p| p.as_str().expect("path string").to_string())
                .collect()
        })
        .collect()
}

#[test]
fn layers_partition_the_closure_within_budget() {
    let names = [
        "glibc-2.38",
        "zlib-1.3",
        "openssl-3.0",
        "bash-5.2",
        "curl-8.5",
        "git-2.43",
        "htop-3.3",
        "ncurses-6.4",
    ];
    let p: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| store_path(i + 1, n))
        .collect();
    let refs: BTreeMap<usize, Vec<usize>> = BTreeMap::from([
        (0, vec![]),
        (1, vec![0]),
        (2, vec![0, 1]),
        (3, vec![0]),
        (4, vec![0, 1, 2]),
        (5, vec![0, 1, 2, 3, 4]),
        (6, vec![0, 7]),
        (7, vec![0]),
    ]);
    let graph = json!({
        "exportReferencesGraph": { "graph": [p[5], p[6]] },
        "graph": refs.iter().map(|(i, r)| json!({
            "path": p[*i],
            "narSize": 1000 * (i + 1) as u64 + if *i == 0 { 50_000_000 } else { 0 },
            "references": r.iter().map(|j| p[*j].clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let popularity = json!({ "glibc-2.38": 1000, "zlib-1.3": 500, "bash-5.2": 300 });

    for budget in [1, 2, 3, 100] {
        let got = layers(&graph, &popularity, budget);
        assert!(
            !got.is_empty() && got.len() <= budget,
            "budget {budget}: got {} layers: {got:?}",
            got.len()
        );
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for path in got.iter().flatten() {
            *seen.entry(path.as_str()).or_default() += 1;
        }
        for path in &p {
            assert_eq!(
                seen.get(path.as_str()).copied().unwrap_or(0),
                1,
                "budget {budget}: {path} is not in exactly one layer: {got:?}"
            );
        }
        assert_eq!(
            seen.len(),
            p.len(),
            "budget {budget}: unknown paths in {got:?}"
        );
        assert_eq!(
            got,
            layers(&graph, &popularity, budget),
            "budget {budget}: layering is not deterministic"
        );
    }
}

#[test]
fn help_works_for_every_subcommand() {
    let top = nixery_ok(&["--help"]);
    for sub in ["serve", "build", "layers", "pack"] {
        assert!(
            top.contains(sub),
            "`nixery --help` does not mention {sub}:\n{top}"
        );
        let out = nixery_ok(&[sub, "--help"]);
        assert!(
            !out.trim().is_empty(),
            "`nixery {sub} --help` printed nothing"
        );
    }
}

#[test]
fn unknown_subcommand_fails() {
    let out = nixery(&["no-such-subcommand"]);
    assert!(
        !out.status.success(),
        "`nixery no-such-subcommand` succeeded"
    );
}
