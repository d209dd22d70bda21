//! Layer grouping: split a closure into at most `budget` layers so that store paths shared
//! between images land in the same layers, and those layers are built and stored once.
//!
//! The method is Nixery's: a dominator tree over the runtime graph, rooted at a synthetic
//! node that points at the top-level paths and at every big or popular path. Each child of
//! the synthetic root heads a layer holding everything it dominates, i.e. everything only
//! reachable through it. Over budget, the lowest-rated layers are merged into one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::algo::dominators::simple_fast;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Dfs;
use serde::{Deserialize, Serialize};

use crate::graph::{store_path_name, ClosureGraph, PathInfo};

/// The layer budget for store paths when none is configured: registries and runtimes cap an
/// image at 125 layers, and the rest is kept for the customisation layer and headroom.
pub const DEFAULT_LAYER_BUDGET: usize = 94;

/// A path larger than this (NAR bytes) gets its own layer, whoever references it, so that a
/// big dependency is uploaded once rather than inside every layer that happens to own it.
pub const BIG_PATH_BYTES: u64 = 100 * 1000 * 1000;

/// A path in at least this many closures of the package set (its popularity count) and with
/// references of its own gets its own layer: it will recur in many images. Leaves are not
/// promoted: they are usually tiny (cacert, tzdata) and, when shared, already become their
/// own layer through the dominator tree.
pub const POPULAR_PATH_COUNT: u64 = 1000;

/// A set of store paths packed into one layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LayerGroup {
    /// Sorted, unique store paths.
    pub contents: Vec<String>,
}

/// How many closures of the package set contain a path, keyed by `store_path_name`
/// ("glibc-2.38"); in JSON `{"<name-version>": count}`.
pub type Popularity = HashMap<String, u64>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupingOptions {
    /// The most layers to return; values below 1 count as 1.
    pub budget: usize,
}

impl Default for GroupingOptions {
    fn default() -> Self {
        Self {
            budget: DEFAULT_LAYER_BUDGET,
        }
    }
}

/// A layer being formed, with the rating that decides which layers are merged first.
struct Layer {
    contents: Vec<String>,
    rating: u64,
}

/// Groups the closure into at most `opts.budget` layers; every path lands in exactly one.
///
/// A `known` layer whose paths all belong to this closure is emitted unchanged (it is
/// already stored) and counts against the budget; the other paths are grouped anew. Known
/// layers come first in the result, then the new layers by descending rating. The result
/// depends only on the sets given, never on their order.
pub fn group_layers(
    graph: &ClosureGraph,
    popularity: &Popularity,
    known: &[LayerGroup],
    opts: &GroupingOptions,
) -> Vec<LayerGroup> {
    let budget = opts.budget.max(1);
    let (reused, remaining) = select_known(graph, known, budget);
    // select_known leaves room for at least one layer whenever paths remain.
    let new_budget = budget - reused.len();
    let mut layers = if remaining.is_empty() {
        Vec::new()
    } else {
        merge_to_budget(dominator_layers(graph, popularity, &remaining), new_budget)
    };
    layers.sort_by(|a, b| by_rating(b, a));
    let new = layers.into_iter().map(|l| LayerGroup {
        contents: l.contents,
    });
    reused.into_iter().chain(new).collect()
}

/// Ascending by rating, then descending by contents (which differ: layers are disjoint),
/// so that the reverse lists equal-rated layers by first path.
fn by_rating(a: &Layer, b: &Layer) -> std::cmp::Ordering {
    a.rating
        .cmp(&b.rating)
        .then_with(|| b.contents.cmp(&a.contents))
}

fn size_of(graph: &ClosureGraph, contents: &[String]) -> u64 {
    contents
        .iter()
        .map(|p| graph.paths[p].nar_size)
        .fold(0, u64::saturating_add)
}

fn popularity_of(popularity: &Popularity, path: &str) -> u64 {
    popularity.get(store_path_name(path)).copied().unwrap_or(0)
}

/// Picks the known layers to reuse and returns them with the paths they leave ungrouped.
/// Bigger layers are preferred since they save the most packing; overlapping ones are
/// skipped, as a path may be in only one layer.
fn select_known<'g>(
    graph: &'g ClosureGraph,
    known: &[LayerGroup],
    budget: usize,
) -> (Vec<LayerGroup>, BTreeSet<&'g str>) {
    let mut candidates: Vec<(u64, &LayerGroup)> = known
        .iter()
        .filter(|l| fits(graph, l))
        .map(|l| (size_of(graph, &l.contents), l))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.contents.cmp(&b.1.contents)));
    let mut chosen: Vec<&LayerGroup> = Vec::new();
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    for (_, layer) in candidates {
        if chosen.len() == budget {
            break;
        }
        if layer.contents.iter().all(|p| !taken.contains(p.as_str())) {
            taken.extend(layer.contents.iter().map(String::as_str));
            chosen.push(layer);
        }
    }
    // Paths left over need one layer of their own: give up the smallest reused layer.
    if chosen.len() == budget && taken.len() < graph.paths.len() {
        if let Some(dropped) = chosen.pop() {
            for p in &dropped.contents {
                taken.remove(p.as_str());
            }
        }
    }
    let remaining = graph
        .paths
        .keys()
        .map(String::as_str)
        .filter(|p| !taken.contains(p))
        .collect();
    (chosen.into_iter().cloned().collect(), remaining)
}

/// A known layer fits when it is non-empty, keeps the `LayerGroup` invariant (sorted,
/// unique; its stored key was computed from that list) and lies wholly in the closure.
fn fits(graph: &ClosureGraph, layer: &LayerGroup) -> bool {
    !layer.contents.is_empty()
        && layer.contents.windows(2).all(|w| w[0] < w[1])
        && layer.contents.iter().all(|p| graph.paths.contains_key(p))
}

fn is_big_or_popular(info: &PathInfo, popularity: &Popularity) -> bool {
    let count = popularity_of(popularity, &info.path);
    info.nar_size > BIG_PATH_BYTES || (count >= POPULAR_PATH_COUNT && !info.references.is_empty())
}

/// One layer per child of the synthetic root in the dominator tree over `remaining`.
fn dominator_layers(
    graph: &ClosureGraph,
    popularity: &Popularity,
    remaining: &BTreeSet<&str>,
) -> Vec<Layer> {
    let (g, root, names) = build_graph(graph, popularity, remaining);
    let doms = simple_fast(&g, root);
    // Group every node under the child of the root that dominates it (or is it).
    let mut by_head: BTreeMap<NodeIndex, Vec<String>> = BTreeMap::new();
    for node in g.node_indices().filter(|n| *n != root) {
        let mut head = node;
        while let Some(up) = doms.immediate_dominator(head) {
            if up == root {
                break;
            }
            head = up;
        }
        by_head
            .entry(head)
            .or_default()
            .push(names[node.index()].to_string());
    }
    by_head
        .into_iter()
        .map(|(head, mut contents)| {
            contents.sort();
            let size = size_of(graph, &contents);
            let count = popularity_of(popularity, names[head.index()]);
            // Nixery rates popularity x size. The +1 keeps size meaningful for paths with
            // no popularity data, so that small layers, not big ones, are merged first.
            let rating = count.saturating_add(1).saturating_mul(size);
            Layer { contents, rating }
        })
        .collect()
}

/// The runtime graph over `remaining`, plus the synthetic root (node 0). Node indices
/// follow the sorted path order, so the graph does not depend on input order.
fn build_graph<'g>(
    graph: &'g ClosureGraph,
    popularity: &Popularity,
    remaining: &BTreeSet<&'g str>,
) -> (DiGraph<(), ()>, NodeIndex, Vec<&'g str>) {
    let mut g = DiGraph::new();
    let root = g.add_node(());
    let mut names = vec![""];
    let mut index: HashMap<&str, NodeIndex> = HashMap::new();
    for &p in remaining {
        index.insert(p, g.add_node(()));
        names.push(p);
    }
    for r in &graph.roots {
        if let Some(&n) = index.get(r.as_str()) {
            g.add_edge(root, n, ());
        }
    }
    for info in graph.paths.values() {
        let from = index.get(info.path.as_str()).copied();
        if let Some(node) = from.filter(|_| is_big_or_popular(info, popularity)) {
            g.add_edge(root, node, ());
        }
        for to in info.references.iter().filter_map(|r| index.get(r.as_str())) {
            // A path in a reused layer stands in for a root: what it references must be
            // reachable, and must not be owned by any layer being formed.
            g.add_edge(from.unwrap_or(root), *to, ());
        }
    }
    connect_unreachable(&mut g, root);
    (g, root, names)
}

/// A valid closure is reachable from its roots, but a path that is not must still land
/// in a layer: link it to the root so it heads one.
fn connect_unreachable(g: &mut DiGraph<(), ()>, root: NodeIndex) {
    let mut seen = vec![false; g.node_count()];
    let mut dfs = Dfs::new(&*g, root);
    while let Some(n) = dfs.next(&*g) {
        seen[n.index()] = true;
    }
    let unreachable: Vec<NodeIndex> = g.node_indices().filter(|n| !seen[n.index()]).collect();
    for n in unreachable {
        g.add_edge(root, n, ());
    }
}

/// Merges the lowest-rated layers into one, as Nixery does, until at most `budget` remain.
fn merge_to_budget(mut layers: Vec<Layer>, budget: usize) -> Vec<Layer> {
    if layers.len() <= budget {
        return layers;
    }
    layers.sort_by(by_rating);
    let keep = layers.split_off(layers.len() - (budget - 1));
    let (mut contents, rating) = layers
        .into_iter()
        .fold((Vec::new(), 0u64), |(mut c, r), l| {
            c.extend(l.contents);
            (c, r.saturating_add(l.rating))
        });
    contents.sort();
    std::iter::once(Layer { contents, rating })
        .chain(keep)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(name: &str) -> String {
        format!("/nix/store/{}-{name}", "h".repeat(32))
    }

    /// A closure from a compact spec: `"a:10>x,s x:5"` is a (10 bytes, refs x and s) and x.
    fn closure(roots: &str, spec: &str) -> ClosureGraph {
        let paths = spec.split_whitespace().map(|entry| {
            let (head, refs) = entry.split_once('>').unwrap_or((entry, ""));
            let (name, size) = head.split_once(':').expect("name:size");
            let references = refs.split(',').filter(|r| !r.is_empty()).map(sp).collect();
            let nar_size = size.parse().expect("size");
            (
                sp(name),
                PathInfo {
                    path: sp(name),
                    nar_size,
                    references,
                },
            )
        });
        let roots = roots.split_whitespace().map(sp).collect();
        ClosureGraph {
            roots,
            paths: paths.collect(),
        }
    }

    fn group(names: &str) -> LayerGroup {
        let mut contents: Vec<String> = names.split_whitespace().map(sp).collect();
        contents.sort();
        LayerGroup { contents }
    }

    fn groups(layers: &[&str]) -> Vec<LayerGroup> {
        sorted(layers.iter().map(|l| group(l)).collect())
    }

    fn popular(entries: &[(&str, u64)]) -> Popularity {
        entries
            .iter()
            .map(|(n, c)| (store_path_name(&sp(n)).to_string(), *c))
            .collect()
    }

    fn run(g: &ClosureGraph, p: &Popularity, k: &[LayerGroup], budget: usize) -> Vec<LayerGroup> {
        group_layers(g, p, k, &GroupingOptions { budget })
    }

    fn sorted(mut layers: Vec<LayerGroup>) -> Vec<LayerGroup> {
        layers.sort_by(|a, b| a.contents.cmp(&b.contents));
        layers
    }

    /// ~300 paths in a DAG: 10 roots, each later path referenced by some earlier one, plus
    /// extra references so that many dependencies are shared. A 64-bit LCG stands in for
    /// a random crate.
    fn generated() -> (Vec<String>, Vec<PathInfo>, Popularity) {
        let mut state = 7u64;
        let mut rng = move |bound: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % bound as u64) as usize
        };
        let n = 300;
        let mut refs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for j in 10..n {
            for _ in 0..1 + rng(3) {
                refs[rng(j)].insert(j);
            }
        }
        let name = |i: usize| format!("/nix/store/{i:0>32}-pkg{i}-1.0");
        let big = |i: usize| if i % 97 == 5 { 10_000 } else { 1 };
        let infos = (0..n)
            .map(|i| PathInfo {
                path: name(i),
                nar_size: 1000 + rng(50_000) as u64 * big(i),
                references: refs[i].iter().map(|&j| name(j)).collect(),
            })
            .collect();
        let pop = (0..n)
            .step_by(7)
            .map(|i| (format!("pkg{i}-1.0"), rng(3000) as u64));
        ((0..10).map(name).collect(), infos, pop.collect())
    }

    fn to_graph(roots: Vec<String>, infos: Vec<PathInfo>) -> ClosureGraph {
        let paths = infos.into_iter().map(|i| (i.path.clone(), i)).collect();
        ClosureGraph { roots, paths }
    }

    fn assert_partition(g: &ClosureGraph, layers: &[LayerGroup], budget: usize) {
        assert!(layers.len() <= budget, "over budget {budget}");
        let mut all: Vec<&String> = layers.iter().flat_map(|l| &l.contents).collect();
        all.sort();
        assert_eq!(all, g.paths.keys().collect::<Vec<_>>(), "each path once");
        for l in layers {
            assert!(l.contents.windows(2).all(|w| w[0] < w[1]) && !l.contents.is_empty());
        }
    }

    #[test]
    fn generated_graph_fits_every_budget() {
        let (roots, infos, pop) = generated();
        let g = to_graph(roots, infos);
        let ideal = run(&g, &pop, &[], usize::MAX).len();
        assert!(ideal > 94, "only {ideal} layers: nothing to merge");
        for budget in [1, 2, 3, 94] {
            let layers = run(&g, &pop, &[], budget);
            assert_partition(&g, &layers, budget);
            assert_eq!(layers.len(), budget);
        }
        assert_eq!(run(&g, &pop, &[], 0), run(&g, &pop, &[], 1));
    }

    #[test]
    fn grouping_is_deterministic() {
        let (mut roots, mut infos, pop) = generated();
        let one = LayerGroup {
            contents: vec![infos[250].path.clone()],
        };
        let mut known = vec![one.clone(), group("absent")];
        let expected = run(&to_graph(roots.clone(), infos.clone()), &pop, &known, 40);
        assert_eq!(expected[0], one, "the fitting known layer is reused, first");
        roots.reverse();
        infos.reverse();
        infos.iter_mut().for_each(|i| i.references.reverse());
        known.reverse();
        // A fresh HashMap has a fresh hash seed, hence another iteration order.
        let pop: Popularity = pop.into_iter().collect();
        assert_eq!(run(&to_graph(roots, infos), &pop, &known, 40), expected);
    }

    #[test]
    fn shared_dependency_gets_own_layer_exclusive_stays() {
        let g = closure("a b", "a:10>x,s b:10>s x:10 s:10>t t:1");
        let layers = sorted(run(&g, &Popularity::new(), &[], 94));
        assert_eq!(layers, groups(&["a x", "b", "s t"]));
    }

    #[test]
    fn big_and_popular_paths_are_promoted() {
        let big = BIG_PATH_BYTES + 1;
        let g = closure(
            "a",
            &format!("a:10>big,pop,leaf big:{big} pop:5>dep dep:5 leaf:5"),
        );
        let pop = popular(&[("pop", POPULAR_PATH_COUNT), ("leaf", POPULAR_PATH_COUNT)]);
        let layers = sorted(run(&g, &pop, &[], 94));
        assert_eq!(layers, groups(&["a leaf", "big", "dep pop"]));
    }

    #[test]
    fn lowest_rated_layers_merge_first() {
        let g = closure("a b c d", "a:1 b:2 c:300 d:50");
        // Ratings: a 1, b 2, c 300, d 101 * 50; output by descending rating.
        let layers = run(&g, &popular(&[("d", 100)]), &[], 3);
        assert_eq!(layers, vec![group("d"), group("c"), group("a b")]);
    }

    #[test]
    fn known_layers_reused_when_they_fit() {
        let g = closure("a b", "a:10>s b:10>s s:10>t t:1");
        let pop = Popularity::new();
        let fits = group("a t");
        let known = [group("s zzz"), fits.clone(), group("t"), group("")];
        let layers = run(&g, &pop, &known, 94);
        assert_partition(&g, &layers, 94);
        // The larger fitting layer wins over the overlapping {t}; s is grouped anew.
        assert_eq!(layers[0], fits);
        assert_eq!(sorted(layers[1..].to_vec()), groups(&["b", "s"]));
        // A known layer counts against the budget, but leaves room for the rest.
        assert_eq!(run(&g, &pop, &known, 2), vec![fits, group("b s")]);
        let whole = group("a b s t");
        assert_eq!(run(&g, &pop, &known, 1), vec![whole.clone()]);
        assert_eq!(run(&g, &pop, std::slice::from_ref(&whole), 1), vec![whole]);
    }

    #[test]
    fn unreachable_paths_still_land_in_a_layer() {
        let g = closure("a", "a:1 orphan:1>dep dep:1");
        assert_partition(&g, &run(&g, &Popularity::new(), &[], 94), 94);
        assert!(run(&closure("", ""), &Popularity::new(), &[], 94).is_empty());
    }

    #[test]
    fn layer_group_json_shape() {
        let json = serde_json::to_string(&group("a")).expect("serialize");
        assert_eq!(json, format!(r#"{{"contents":["{}"]}}"#, sp("a")));
    }
}
