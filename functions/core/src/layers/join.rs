//! Step 2 of grouping: joining paths along references by how often they come together.

use std::collections::{BTreeSet, HashMap};

use super::{Layer, Popularity, JOIN_COST_BYTES, JOIN_MAX_MISS_PPM, JOIN_MISS_PPM, PPM};
use crate::graph::{store_path_name, ClosureGraph};

/// The popularity of every path of the closure. Without data for any of them, the count
/// of closure paths that reach a path (itself included) stands in, as in nixpkgs'
/// referencesByPopularity: the closures of the image's own paths are the package set.
pub(super) fn path_counts<'g>(
    graph: &'g ClosureGraph,
    popularity: &Popularity,
) -> HashMap<&'g str, u64> {
    let lookup = |p: &str| popularity.get(store_path_name(p));
    if graph.paths.keys().any(|p| lookup(p).is_some()) {
        let mut counts = graph
            .paths
            .keys()
            .map(|p| (p.as_str(), lookup(p).unwrap_or(0)))
            .collect();
        if popularity.direct_referrers {
            add_referrers_counts(graph, &mut counts);
        }
        return counts;
    }
    let mut counts: HashMap<&str, u64> = graph.paths.keys().map(|p| (p.as_str(), 0)).collect();
    for start in graph.paths.keys() {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo = vec![start.as_str()];
        while let Some(p) = todo.pop() {
            if seen.insert(p) {
                todo.extend(graph.paths[p].references.iter().map(String::as_str));
            }
        }
        for p in seen {
            *counts.get_mut(p).expect("closed graph") += 1;
        }
    }
    counts
}

/// Turns Nixery's direct-referrer counts into estimated closure counts: every closure that
/// holds a referrer holds the path too, so a path counts its own plus its referrers' (in this
/// closure), referrers first. Shared ancestors count more than once, which errs towards the
/// deep, widely shared libraries that direct counts under-count most. On the layering
/// benchmark this takes Nixery-format data from 1.06-1.19x the lower bound to 1.02-1.05x.
fn add_referrers_counts<'g>(graph: &'g ClosureGraph, counts: &mut HashMap<&'g str, u64>) {
    for path in referrers_first(graph) {
        let own = counts[path];
        for r in &graph.paths[path].references {
            let slot = counts.get_mut(r.as_str()).expect("closed graph");
            *slot = slot.saturating_add(own);
        }
    }
}

/// The closure's paths, each before the paths it references (reverse depth-first post-order;
/// in a cycle, which Nix closures do not have, some edge is taken backwards).
fn referrers_first(graph: &ClosureGraph) -> Vec<&str> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(graph.paths.len());
    for start in graph.paths.keys() {
        if !done.insert(start.as_str()) {
            continue;
        }
        let mut stack = vec![(start.as_str(), 0usize)];
        while let Some((path, next)) = stack.pop() {
            let refs = &graph.paths[path].references;
            match refs.get(next) {
                Some(r) => {
                    stack.push((path, next + 1));
                    if done.insert(r.as_str()) {
                        stack.push((r.as_str(), 0));
                    }
                }
                None => order.push(path),
            }
        }
    }
    order.reverse();
    order
}

/// The share (ppm) of closures holding `to` that lack `from`, for a reference from -> to.
/// An unknown referrer (count 0) gives no evidence: a miss rate of 100%. An unknown
/// referenced path (new since the data was made) counts as held where its referrer is.
fn miss_ppm(from: u64, to: u64) -> u64 {
    let to = u128::from(to.max(1));
    let both = u128::from(from).min(to);
    ((to - both) * u128::from(PPM) / to) as u64
}

/// Joins the `remaining` paths along references into layers (step 2 of the module doc).
pub(super) fn join_paths(
    graph: &ClosureGraph,
    counts: &HashMap<&str, u64>,
    remaining: &BTreeSet<&str>,
) -> Vec<Layer> {
    let names: Vec<&str> = remaining.iter().copied().collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mut edges: Vec<(u64, usize, usize)> = Vec::new();
    for (from, name) in names.iter().enumerate() {
        for to in graph.paths[*name].references.iter() {
            if let Some(&to) = index.get(to.as_str()) {
                edges.push((miss_ppm(counts[name], counts[names[to]]), from, to));
            }
        }
    }
    edges.sort_unstable();
    let mut sets = UnionFind::new(names.iter().map(|p| graph.paths[*p].nar_size));
    for (miss, from, to) in edges {
        let (a, b) = (sets.find(from), sets.find(to));
        if a != b && joins(miss, sets.size[b]) {
            sets.union(a, b);
        }
    }
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for i in 0..names.len() {
        groups[sets.find(i)].push(i);
    }
    groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| Layer {
            contents: g.iter().map(|&i| names[i].to_string()).collect(),
            size: g
                .iter()
                .map(|&i| graph.paths[names[i]].nar_size)
                .fold(0, u64::saturating_add),
            popularity: g.iter().map(|&i| counts[names[i]]).max().unwrap_or(0),
        })
        .collect()
}

/// Whether a reference with miss rate `miss` joins its sides, `referenced` the bytes of the
/// referenced side: in closures that hold it without the referrer, those bytes come again
/// in another layer.
fn joins(miss: u64, referenced: u64) -> bool {
    let cost = u128::from(miss) * u128::from(referenced);
    miss <= JOIN_MISS_PPM
        || (miss <= JOIN_MAX_MISS_PPM && cost <= u128::from(JOIN_COST_BYTES) * u128::from(PPM))
}

/// Disjoint sets of path indices, with the bytes of each set at its representative.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<u64>,
}

impl UnionFind {
    fn new(sizes: impl Iterator<Item = u64>) -> Self {
        let size: Vec<u64> = sizes.collect();
        Self {
            parent: (0..size.len()).collect(),
            size,
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    /// Joins two representatives; the lower index stays the representative.
    fn union(&mut self, a: usize, b: usize) {
        let (lo, hi) = (a.min(b), a.max(b));
        self.parent[hi] = lo;
        self.size[lo] = self.size[lo].saturating_add(self.size[hi]);
    }
}
