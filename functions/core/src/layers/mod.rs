//! Layer grouping: split a closure into at most `budget` layers so that store paths shared
//! between images land in the same layers, and those layers are built and stored once.
//!
//! A client downloads a layer unless it holds one with identical contents, so a layer pays
//! off when it recurs unchanged in other images. Two paths may share a layer when nearly
//! every closure that holds one also holds the other. Popularity (how many closures of the
//! package set hold a path) measures that: if `r` references `p`, every closure with `r`
//! holds `p`, and `pop(r) / pop(p)` is the share of closures with `p` that also hold `r`.
//!
//! 1. Layers already in the registry's index that fit the closure are reused as they are.
//! 2. The other paths are joined along references, most certain edges first: an edge
//!    joins when the two paths (almost) always come together, or when what a mismatch
//!    would cost is small: at most half of the closures holding the referenced side lack
//!    the referrer, and that share of the referenced side's bytes is at most 250 kB.
//! 3. Above the target, the smallest layers are merged into one, as Nixery does; reused
//!    layers count against the target but leave this image room for its own layers.
//!
//! The same closure and data always give the same layers, whatever the input order.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::graph::ClosureGraph;

mod join;
#[cfg(test)]
mod tests;

use join::{join_paths, path_counts};

/// The layer budget for store paths when none is configured: registries and runtimes cap an
/// image at 125 layers, and the rest is kept for the customisation layer and headroom.
pub const DEFAULT_LAYER_BUDGET: usize = 94;

/// The largest layer budget for store paths: 125 layers in all, one of them the
/// customisation layer.
pub const MAX_LAYER_BUDGET: usize = 124;

/// Layers beyond this many are merged even within budget: every layer costs a request
/// and a manifest entry, and the smallest ones save little when shared.
pub const TARGET_LAYERS: usize = 60;

/// Above the target, new layers may still number this many however many known layers are
/// reused: reused layers come from other images, and squeezing this image's own paths into
/// fewer layers would merge them into one layer no other image has (on the layering bench's
/// large images, 19% more bytes pulled instead of 2.5%).
const MIN_NEW_LAYERS: usize = 30;

/// Miss rates are in parts per million: the share of closures holding the referenced
/// path but not the referrer.
const PPM: u64 = 1_000_000;

/// Paths join when at most 2% of the closures holding one lack the other.
const JOIN_MISS_PPM: u64 = 20_000;

/// Paths also join when miss rate x bytes of the referenced side is at most this, and
/// the miss rate at most [`JOIN_MAX_MISS_PPM`]: a rare mismatch of a small layer costs
/// less than an extra layer in every image. Tuned on the layering benchmark's bookworm
/// corpus and checked on held-out ones (tests/bench/layering/README.md).
const JOIN_COST_BYTES: u64 = 250_000;

/// Above this miss rate paths stay apart however small: the referenced side then lives
/// mostly in other closures, where its layer recurs on its own.
const JOIN_MAX_MISS_PPM: u64 = 500_000;

/// A set of store paths packed into one layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LayerGroup {
    /// Sorted, unique store paths.
    pub contents: Vec<String>,
}

/// How many closures of the package set contain a path, keyed by `store_path_name`
/// ("glibc-2.38"); read from the files of [`crate::popularity`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Popularity {
    pub counts: HashMap<String, u64>,
    /// The counts are Nixery's direct-referrer counts, not closure counts: grouping then
    /// estimates closure counts from them (`join::path_counts`).
    pub direct_referrers: bool,
}

impl Popularity {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, name: &str) -> Option<u64> {
        self.counts.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Closure counts, as `nixery popularity` computes them.
impl FromIterator<(String, u64)> for Popularity {
    fn from_iter<I: IntoIterator<Item = (String, u64)>>(iter: I) -> Self {
        Self {
            counts: iter.into_iter().collect(),
            direct_referrers: false,
        }
    }
}

impl IntoIterator for Popularity {
    type Item = (String, u64);
    type IntoIter = std::collections::hash_map::IntoIter<String, u64>;

    fn into_iter(self) -> Self::IntoIter {
        self.counts.into_iter()
    }
}

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

/// A layer being formed.
struct Layer {
    contents: Vec<String>,
    size: u64,
    /// The highest popularity of its paths: widely shared layers are listed first.
    popularity: u64,
}

/// Groups the closure into at most `opts.budget` layers; every path lands in exactly one.
///
/// A `known` layer whose paths all belong to this closure is emitted unchanged (it is
/// already stored) and counts against the budget; the other paths are grouped anew. Known
/// layers come first in the result, then the new layers, most popular first. The result
/// depends only on the sets given, never on their order.
pub fn group_layers(
    graph: &ClosureGraph,
    popularity: &Popularity,
    known: &[LayerGroup],
    opts: &GroupingOptions,
) -> Vec<LayerGroup> {
    let target = opts.budget.clamp(1, TARGET_LAYERS);
    let (reused, remaining) = select_known(graph, known, target);
    // select_known leaves room for at least one layer whenever paths remain; the cap stays
    // within the budget.
    let cap = (target - reused.len())
        .max(MIN_NEW_LAYERS.min(target))
        .min(opts.budget.max(1) - reused.len());
    let mut layers = if remaining.is_empty() {
        Vec::new()
    } else {
        let counts = path_counts(graph, popularity);
        merge_smallest(join_paths(graph, &counts, &remaining), cap)
    };
    layers.sort_by(|a, b| {
        (b.popularity, b.size)
            .cmp(&(a.popularity, a.size))
            .then_with(|| a.contents.cmp(&b.contents))
    });
    let new = layers.into_iter().map(|l| LayerGroup {
        contents: l.contents,
    });
    reused.into_iter().chain(new).collect()
}

fn size_of(graph: &ClosureGraph, contents: &[String]) -> u64 {
    contents
        .iter()
        .map(|p| graph.paths[p].nar_size)
        .fold(0, u64::saturating_add)
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

/// Merges the smallest layers into one until at most `cap` remain: they hold the fewest
/// bytes, so re-downloading them where the merged layer does not recur costs least.
fn merge_smallest(mut layers: Vec<Layer>, cap: usize) -> Vec<Layer> {
    if layers.len() <= cap {
        return layers;
    }
    layers.sort_by(|a, b| {
        a.size
            .cmp(&b.size)
            .then_with(|| a.contents.cmp(&b.contents))
    });
    let keep = layers.split_off(layers.len() - (cap - 1));
    let mut merged = layers.into_iter().fold(
        Layer {
            contents: Vec::new(),
            size: 0,
            popularity: 0,
        },
        |mut m, l| {
            m.contents.extend(l.contents);
            m.size = m.size.saturating_add(l.size);
            m.popularity = m.popularity.max(l.popularity);
            m
        },
    );
    merged.contents.sort();
    std::iter::once(merged).chain(keep).collect()
}
