//! Closure counts: for every store path, how many of the roots' closures hold it.

use std::collections::{BTreeMap, HashMap};

use crate::graph::PathInfo;

/// How many closures of `roots` hold each path of `paths` (paths no root reaches are left
/// out). `paths` must be closed under references; a root or reference not in it is skipped,
/// so a cache that lacks a few paths still gives counts for the rest.
///
/// One depth-first walk per root, marking visits with the root's number so the marks never
/// need clearing: the cost is the sum of the closure sizes (a channel of ~100k roots with
/// closures of a few hundred paths: tens of millions of steps, seconds), and the memory two
/// words per path, where a bitset of roots per path would need paths x roots bits.
pub fn closure_counts(
    paths: &BTreeMap<String, PathInfo>,
    roots: &[String],
) -> BTreeMap<String, u64> {
    let names: Vec<&str> = paths.keys().map(String::as_str).collect();
    let index: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i as u32))
        .collect();
    let refs: Vec<Vec<u32>> = paths
        .values()
        .map(|info| {
            let found = info.references.iter().filter_map(|r| index.get(r.as_str()));
            found.copied().collect()
        })
        .collect();
    let mut starts: Vec<u32> = roots
        .iter()
        .filter_map(|r| index.get(r.as_str()).copied())
        .collect();
    // A root listed twice is one closure of the package set, not two.
    starts.sort_unstable();
    starts.dedup();
    let counts = count_from(&refs, &starts);
    names
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|(p, c)| (p.to_string(), c))
        .collect()
}

/// The walk of [`closure_counts`] over indexed adjacency lists.
fn count_from(refs: &[Vec<u32>], starts: &[u32]) -> Vec<u64> {
    let mut counts = vec![0u64; refs.len()];
    // mark[p] = 1 + the number of the last root whose walk reached p.
    let mut mark = vec![0usize; refs.len()];
    let mut stack: Vec<u32> = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let stamp = n + 1;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let p = p as usize;
            if mark[p] == stamp {
                continue;
            }
            mark[p] = stamp;
            counts[p] += 1;
            stack.extend(refs[p].iter().filter(|&&q| mark[q as usize] != stamp));
        }
    }
    counts
}

/// Counts keyed by `store_path_name` ("glibc-2.38"), as the grouping looks them up: the
/// name survives a channel bump where the hash does not. Two paths with one name (the same
/// package built twice) keep the higher count, the one of the more widely shared build.
pub fn by_name(counts: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (path, &count) in counts {
        let name = crate::graph::store_path_name(path).to_string();
        let slot = out.entry(name).or_insert(0);
        *slot = (*slot).max(count);
    }
    out
}
