//! `nixery popularity` on real store paths of the offline package set: from a signed binary
//! cache (HTTP and file://), from the local Nix store and from a `nix path-info` file; the
//! counts checked against `nix-store --query --requisites` of each root. And `--popularity`
//! reading both its output and Nixery's flat popularity.json.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use nixery_e2e::harness::binary_cache::BinaryCacheServer;
use nixery_e2e::harness::{nix_config, nixery, nixery_ok, output_within, pkgs_path, CLI_TIMEOUT};
use serde_json::Value;

/// git and curl share zlib, openssl and curl; htop has ncurses alone; every tool runs on
/// bash; hello has nothing else.
const ROOTS: &[&str] = &["git", "curl", "htop", "hello"];

fn run(program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).env("NIX_CONFIG", nix_config());
    let out = output_within(&mut cmd, CLI_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?} failed:\n{stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The top-level store paths of `attrs` (built already by the cache, so this is quick).
fn build(attrs: &[&str]) -> Vec<String> {
    let pkgs = pkgs_path();
    let mut args = vec![pkgs.to_str().expect("UTF-8"), "--no-out-link"];
    for a in attrs {
        args.extend(["-A", a]);
    }
    let out = run("nix-build", &args);
    out.lines()
        .filter(|l| l.starts_with('/'))
        .map(str::to_string)
        .collect()
}

/// The oracle: closure counts by name from Nix's own closure of each root.
fn expected(roots: &[String]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for root in roots {
        for path in run("nix-store", &["--query", "--requisites", root]).lines() {
            *counts.entry(name(path).to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    &base[33..]
}

/// Runs `nixery popularity ARGS -o FILE`; returns the file's counts and the stderr.
fn popularity(dir: &Path, args: &[&str]) -> (Value, String) {
    let out_file = dir.join("counts.json");
    let mut all = vec!["popularity", "-o", out_file.to_str().expect("UTF-8")];
    all.extend(args);
    let out = nixery(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "nixery {all:?} failed:\n{stderr}");
    let text = std::fs::read_to_string(&out_file).expect("counts file");
    (serde_json::from_str(&text).expect("counts JSON"), stderr)
}

fn counts_of(file: &Value) -> BTreeMap<String, u64> {
    assert_eq!(file["format"], "nixery-closure-counts", "{file}");
    assert_eq!(file["version"], 1, "{file}");
    serde_json::from_value(file["counts"].clone()).expect("counts map")
}

/// Shared dependencies count every closure holding them, a leaf only its own.
fn check(file: &Value, roots: &[String]) {
    let counts = counts_of(file);
    assert_eq!(counts, expected(roots), "counts differ from nix-store -qR");
    assert_eq!(file["roots"], roots.len() as u64);
    let by = |prefix: &str| {
        let hit = counts.iter().find(|(n, _)| n.starts_with(prefix));
        *hit.unwrap_or_else(|| panic!("no {prefix} in {counts:?}")).1
    };
    assert_eq!(by("hello-"), 1);
    assert_eq!(by("htop-"), 1);
    assert_eq!(by("zlib-"), 2, "zlib is in git's and curl's closures");
    assert_eq!(by("curl-"), 2, "curl is a root and in git's closure");
    let everywhere = counts.values().filter(|&&c| c == roots.len() as u64);
    assert!(
        everywhere.count() >= 1,
        "bash is in every closure: {counts:?}"
    );
}

#[test]
fn counts_from_a_binary_cache_over_http_and_file_match_nix_s_closures() {
    let cache = BinaryCacheServer::start(ROOTS);
    let roots = build(ROOTS);
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("store-paths");
    // A root the cache lacks is skipped and reported, as a channel's list may hold some.
    let absent = format!("/nix/store/{}-absent-1.0", "0".repeat(32));
    std::fs::write(&list, format!("{}\n{absent}\n", roots.join("\n"))).expect("write roots");
    let list = list.to_str().expect("UTF-8");
    let key = cache.public_key.as_str();
    let args = [
        "--binary-cache",
        &cache.url,
        "--trusted-key",
        key,
        "--roots",
        list,
    ];
    let (file, stderr) = popularity(dir.path(), &args);
    assert!(stderr.contains("1 missing"), "stderr:\n{stderr}");
    assert_eq!(file["roots"], roots.len() as u64 + 1);
    let counts = counts_of(&file);
    assert_eq!(counts, expected(&roots), "counts differ from nix-store -qR");

    let file_url = format!("file://{}", cache.dir.display());
    let mut args = vec![
        "--binary-cache",
        &file_url,
        "--trusted-key",
        key,
        "--parallel",
        "2",
    ];
    for r in &roots {
        args.extend(["--path", r.as_str()]);
    }
    let (file, _) = popularity(dir.path(), &args);
    check(&file, &roots);
}

#[test]
fn a_cache_signed_with_another_key_is_refused() {
    let cache = BinaryCacheServer::start(&["hello"]);
    let roots = build(&["hello"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let (sk, pk) = (dir.path().join("sk"), dir.path().join("pk"));
    let (sk, pk) = (sk.to_str().expect("UTF-8"), pk.to_str().expect("UTF-8"));
    run(
        "nix-store",
        &["--generate-binary-cache-key", "other", sk, pk],
    );
    let other = std::fs::read_to_string(pk).expect("public key");
    let other = other.trim();
    let args = [
        "popularity",
        "--binary-cache",
        &cache.url,
        "--trusted-key",
        other,
        "--path",
        &roots[0],
    ];
    let out = nixery(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an untrusted cache was accepted");
    assert!(stderr.contains("signature"), "stderr:\n{stderr}");
}

#[test]
fn counts_from_the_local_store_and_a_path_info_file_match_nix_s_closures() {
    let roots = build(ROOTS);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["--local-store"];
    for r in &roots {
        args.extend(["--path", r.as_str()]);
    }
    let (file, _) = popularity(dir.path(), &args);
    check(&file, &roots);

    let mut info_args = vec!["path-info", "--json", "--recursive"];
    info_args.extend(roots.iter().map(String::as_str));
    let info = dir.path().join("path-info.json");
    std::fs::write(&info, run("nix", &info_args)).expect("write path-info");
    let info = info.to_str().expect("UTF-8");
    let mut args = vec!["--path-info", info];
    for r in &roots {
        args.extend(["--path", r.as_str()]);
    }
    let (file, _) = popularity(dir.path(), &args);
    check(&file, &roots);
}

#[test]
fn layers_reads_closure_counts_and_nixery_s_popularity_json_and_refuses_others() {
    let roots = build(ROOTS);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut info_args = vec!["path-info", "--json", "--recursive"];
    info_args.extend(roots.iter().map(String::as_str));
    let entries: Value = serde_json::from_str(&run("nix", &info_args)).expect("path-info");
    let graph = serde_json::json!({"exportReferencesGraph": {"graph": roots}, "graph": entries});
    let graph_file = dir.path().join("graph.json");
    std::fs::write(&graph_file, graph.to_string()).expect("write graph");
    let mut args = vec!["--local-store"];
    for r in &roots {
        args.extend(["--path", r.as_str()]);
    }
    let (ours, _) = popularity(dir.path(), &args);
    // Nixery's popcount format: direct referrers (self included), flat.
    let flat = serde_json::json!({"zlib-1.3.1": 3, "openssl-3.0.99": 3, "ncurses-6.4": 2});
    let bad = serde_json::json!({"format": "something-else", "version": 1});
    for (label, data, ok) in [
        ("ours", ours, true),
        ("nixery", flat, true),
        ("bad", bad, false),
    ] {
        let file = dir.path().join(format!("{label}.json"));
        std::fs::write(&file, data.to_string()).expect("write popularity");
        let (g, p) = (
            graph_file.to_str().expect("UTF-8"),
            file.to_str().expect("UTF-8"),
        );
        let out = nixery(&["layers", "--graph", g, "--popularity", p]);
        assert_eq!(out.status.success(), ok, "{label}: {out:?}");
        if ok {
            let layers: Vec<Value> = serde_json::from_slice(&out.stdout).expect("layers JSON");
            let paths: usize = layers
                .iter()
                .map(|l| l["contents"].as_array().map_or(0, Vec::len))
                .sum();
            assert_eq!(paths, entries.as_array().expect("list").len(), "{label}");
        }
    }
    let _ = nixery_ok(&["popularity", "--help"]);
}
