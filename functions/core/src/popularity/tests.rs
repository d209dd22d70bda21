use std::collections::BTreeMap;

use super::*;
use crate::graph::PathInfo;

fn sp(name: &str) -> String {
    format!("/nix/store/{}-{name}", "h".repeat(32))
}

/// Paths from a compact spec: `"a>x,y x>y y"` is a (refs x and y), x (refs y) and y.
fn paths(spec: &str) -> BTreeMap<String, PathInfo> {
    spec.split_whitespace()
        .map(|entry| {
            let (name, refs) = entry.split_once('>').unwrap_or((entry, ""));
            let references = refs.split(',').filter(|r| !r.is_empty()).map(sp).collect();
            let info = PathInfo {
                path: sp(name),
                nar_size: 1,
                references,
            };
            (sp(name), info)
        })
        .collect()
}

fn roots(names: &str) -> Vec<String> {
    names.split_whitespace().map(sp).collect()
}

fn named(counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    by_name(counts).into_iter().collect()
}

#[test]
fn a_shared_dependency_counts_every_closure_holding_it_once() {
    // glibc is reached by every root, twice over from git (directly and through curl).
    let g = paths("git>curl,glibc curl>glibc,zlib jq>glibc glibc zlib");
    let counts = closure_counts(&g, &roots("git curl jq"));
    let want = [
        ("curl", 2),
        ("git", 1),
        ("glibc", 3),
        ("jq", 1),
        ("zlib", 2),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(named(&counts), want);
}

#[test]
fn paths_no_root_reaches_are_left_out_and_duplicate_roots_count_once() {
    let g = paths("a>b b c>b");
    let counts = closure_counts(&g, &roots("a a"));
    let want: Vec<(String, u64)> = vec![("a".into(), 1), ("b".into(), 1)];
    assert_eq!(named(&counts), want);
}

#[test]
fn cycles_and_missing_references_do_not_stall_or_double_count() {
    // Debian-like cycle a <-> b; c references a path the source lacked.
    let g = paths("a>b b>a c>a,gone");
    let counts = closure_counts(&g, &roots("a c gone"));
    let want: Vec<(String, u64)> = vec![("a".into(), 2), ("b".into(), 2), ("c".into(), 1)];
    assert_eq!(named(&counts), want);
}

#[test]
fn a_long_chain_counts_in_linear_steps() {
    // 20k paths in one chain, every one a root: counts are 1..=n (a deep recursion would
    // overflow the stack; a quadratic walk would take minutes).
    let n = 20_000;
    let spec: Vec<String> = (0..n)
        .map(|i| match i + 1 < n {
            true => format!("p{i:05}>p{:05}", i + 1),
            false => format!("p{i:05}"),
        })
        .collect();
    let g = paths(&spec.join(" "));
    let all: Vec<String> = g.keys().cloned().collect();
    let started = std::time::Instant::now();
    let counts = closure_counts(&g, &all[..100]);
    assert_eq!(counts[&sp("p19999")], 100);
    assert_eq!(counts[&sp("p00000")], 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn names_shared_by_two_builds_keep_the_higher_count() {
    let mut counts = BTreeMap::new();
    counts.insert(format!("/nix/store/{}-zlib-1.3", "a".repeat(32)), 3);
    counts.insert(format!("/nix/store/{}-zlib-1.3", "b".repeat(32)), 7);
    assert_eq!(by_name(&counts)["zlib-1.3"], 7);
}

#[test]
fn our_format_round_trips_and_is_told_apart_from_nixery_s() {
    let counts: BTreeMap<String, u64> = [("glibc-2.38".to_string(), 40)].into();
    let text = serde_json::to_string(&ClosureCountsFile::new(40, counts)).expect("json");
    assert!(
        text.contains(r#""format":"nixery-closure-counts""#),
        "{text}"
    );
    let (pop, kind) = parse(&text).expect("ours");
    assert_eq!(kind, PopularityKind::ClosureCounts { roots: 40 });
    assert_eq!(pop.get("glibc-2.38"), Some(40));
    assert!(!pop.direct_referrers);

    let (pop, kind) = parse(r#"{"glibc-2.38": 1234, "zlib-1.3": 56}"#).expect("nixery's");
    assert_eq!(kind, PopularityKind::DirectReferrers);
    assert_eq!(
        (pop.get("glibc-2.38"), pop.get("zlib-1.3")),
        (Some(1234), Some(56))
    );
    assert!(pop.direct_referrers);
}

#[test]
fn unknown_versions_and_other_shapes_are_refused() {
    let newer = r#"{"format": "nixery-closure-counts", "version": 2, "roots": 1, "counts": {}}"#;
    assert!(matches!(parse(newer), Err(PopularityError::Version { .. })));
    assert!(matches!(parse("[1, 2]"), Err(PopularityError::Shape(_))));
    assert!(matches!(
        parse(r#"{"glibc": "many"}"#),
        Err(PopularityError::Shape(_))
    ));
    assert!(matches!(
        parse(r#"{"glibc": -1}"#),
        Err(PopularityError::Shape(_))
    ));
    assert!(matches!(parse("{"), Err(PopularityError::Json(_))));
}

#[tokio::test]
async fn roots_lists_are_read_plain_or_xz_compressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{}\n\n{}\n", sp("git"), sp("jq"));
    let plain = dir.path().join("store-paths");
    std::fs::write(&plain, &text).expect("write");
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    std::io::Write::write_all(&mut xz, text.as_bytes()).expect("compress");
    let packed = dir.path().join("store-paths.xz");
    std::fs::write(&packed, xz.finish().expect("finish")).expect("write");
    for file in [plain, packed] {
        let got = read_roots(file.to_str().expect("utf-8"))
            .await
            .expect("roots");
        assert_eq!(got, roots("git jq"));
    }
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "git\n").expect("write");
    assert!(read_roots(bad.to_str().expect("utf-8")).await.is_err());
}
