#!/usr/bin/env python3
"""Layering benchmark: bytes pulled by warm-cache clients over a pull sequence.

    python3 tests/bench/layering/bench.py [--corpora bookworm,families,random,trixie]
        [--popularity closure,direct] [--pulls 120] [--seed 1] [--nixery PATH]

Corpora: corpora/<name>.json.gz (see make_corpus.py and README.md); "bookworm" is the one the
grouping rule was tuned on, the others are held out. Popularity ({"<name-version>": count})
per corpus, each source reported:
  closure  closure counts: how many closures of all the archive's packages hold the path,
           what `nixery popularity` computes for a channel (given in its file format);
  direct   Nixery's popularity.json for the same archive: direct-referrer counts;
  train    how many train-split images hold the path.
The sequence holds every image once plus random repeats, shuffled with a fixed seed.
A client downloads a layer unless it already holds a layer with identical contents.
"Fleet" deals the pulls round-robin to 4 clients with separate caches and sums.
Goals (issue 10): ours at most 1.02x the lower bound for one client, 1.01x for the fleet,
at most 30 layers on average, on every corpus.

Algorithms:
  lower-bound   one layer per store path (unusable: images hold at most 125 layers)
  nixery-dom    Nixery's published algorithm: a root pointing at top-level, big
                (>100 MB) and popular paths, dominator tree, one layer per child of
                the root, lowest (popularity x size) layers merged to budget 94
  pop-contest   nixpkgs referencesByPopularity: paths ordered by how many paths of the
                closure reference them (transitively, itself included), the first 99
                get a layer each, the rest share the 100th
  ours          `nixery layers --budget 94` (stateless), and with --known-layers set to
                every layer the registry index holds so far (registry-aware)
"""

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIG = 100 * 1000 * 1000
FLEET = 4


def name_of(path):
    base = path.rsplit("/", 1)[-1]
    return base[33:] if len(base) > 33 and base[32] == "-" else base


class Image:
    def __init__(self, raw):
        self.name = raw["name"]
        self.split = raw["split"]
        self.graph = raw["graph"]
        self.roots = raw["graph"]["exportReferencesGraph"]["graph"]
        self.size = {e["path"]: e["narSize"] for e in raw["graph"]["graph"]}
        self.refs = {e["path"]: e["references"] for e in raw["graph"]["graph"]}
        self.json = json.dumps(raw["graph"])


# ---------------------------------------------------------------- baselines


def dominators(nodes, succ, root):
    """Cooper, Harvey, Kennedy: immediate dominators of a graph with one entry."""
    order, seen = [], set()
    stack = [(root, iter(succ[root]))]
    seen.add(root)
    while stack:
        n, it = stack[-1]
        nxt = next((m for m in it if m not in seen), None)
        if nxt is None:
            order.append(n)
            stack.pop()
        else:
            seen.add(nxt)
            stack.append((nxt, iter(succ[nxt])))
    rpo = order[::-1]
    index = {n: i for i, n in enumerate(rpo)}
    preds = {n: [] for n in rpo}
    for n in rpo:
        for m in succ[n]:
            preds[m].append(n)
    idom = {root: root}

    def intersect(a, b):
        while a != b:
            while index[a] > index[b]:
                a = idom[a]
            while index[b] > index[a]:
                b = idom[b]
        return a

    changed = True
    while changed:
        changed = False
        for n in rpo[1:]:
            ps = [p for p in preds[n] if p in idom]
            new = ps[0]
            for p in ps[1:]:
                new = intersect(p, new)
            if idom.get(n) != new:
                idom[n] = new
                changed = True
    return idom


def nixery_dom(img, pop, popular_count, budget=94):
    root = "<root>"
    succ = {p: sorted(img.refs[p]) for p in img.size}
    heads = set(img.roots) | {
        p for p in img.size if img.size[p] > BIG or pop.get(name_of(p), 0) >= popular_count
    }
    succ[root] = sorted(heads)
    idom = dominators(list(img.size), succ, root)
    groups = {}
    for p in img.size:
        h = p
        while idom[h] != root:
            h = idom[h]
        groups.setdefault(h, []).append(p)
    layers = [
        (pop.get(name_of(h), 0) * sum(img.size[p] for p in ps), sorted(ps))
        for h, ps in groups.items()
    ]
    layers.sort(key=lambda l: (-l[0], l[1]))
    if len(layers) > budget:
        merged = sorted(p for _, ps in layers[budget - 1:] for p in ps)
        layers = layers[: budget - 1] + [(0, merged)]
    return [frozenset(ps) for _, ps in layers]


def pop_contest(img, max_layers=100):
    # popularity_contest.py: a path's score is how many closures of the paths in the
    # graph contain it; ties broken by path, descending as in the Python script.
    count = {p: 0 for p in img.size}
    for p in img.size:
        seen, todo = set(), [p]
        while todo:
            q = todo.pop()
            if q not in seen:
                seen.add(q)
                todo += img.refs[q]
        for q in seen:
            count[q] += 1
    order = sorted(img.size, key=lambda p: (count[p], p), reverse=True)
    own = order[: max_layers - 1]
    rest = order[max_layers - 1:]
    return [frozenset([p]) for p in own] + ([frozenset(rest)] if rest else [])


def lower_bound(img):
    return [frozenset([p]) for p in img.size]


# ---------------------------------------------------------------- ours


class Ours:
    def __init__(self, binary, pop, tmp, roots=None):
        self.binary, self.tmp = binary, tmp
        self.pop_file = os.path.join(tmp, "popularity.json")
        # Closure counts go in `nixery popularity`'s format, the others as Nixery's flat map:
        # `--popularity` tells them apart by shape.
        data = pop if roots is None else {"format": "nixery-closure-counts", "version": 1,
                                          "roots": roots, "counts": pop}
        with open(self.pop_file, "w") as f:
            json.dump(data, f, sort_keys=True)

    def __call__(self, img, known=None):
        g = os.path.join(self.tmp, "graph.json")
        with open(g, "w") as f:
            f.write(img.json)
        cmd = [self.binary, "layers", "--graph", g, "--popularity", self.pop_file,
               "--budget", "94"]
        if known is not None:
            k = os.path.join(self.tmp, "known.json")
            with open(k, "w") as f:
                json.dump([{"contents": sorted(l)} for l in known], f)
            cmd += ["--known-layers", k]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return [frozenset(l["contents"]) for l in json.loads(out)]


# ---------------------------------------------------------------- simulation


def check_partition(img, layers):
    seen = [p for l in layers for p in l]
    if sorted(seen) != sorted(img.size):
        sys.exit(f"{img.name}: layers are not a partition of the closure")


def simulate(seq, layering, registry_aware=False):
    """Returns (bytes single client, bytes fleet, layer counts, layers by pull)."""
    index, index_set = [], set()
    single, fleet = set(), [set() for _ in range(FLEET)]
    b_single = b_fleet = 0
    counts, produced = [], []
    for i, img in enumerate(seq):
        layers = layering(img, list(index)) if registry_aware else layering(img)
        check_partition(img, layers)
        produced.append(sorted(sorted(l) for l in layers))
        counts.append(len(layers))
        for l in layers:
            size = sum(img.size[p] for p in l)
            if l not in single:
                single.add(l)
                b_single += size
            if l not in fleet[i % FLEET]:
                fleet[i % FLEET].add(l)
                b_fleet += size
            if l not in index_set:
                index_set.add(l)
                index.append(l)
    return b_single, b_fleet, counts, produced


GOALS = (1.02, 1.01, 30)


def sources_of(corpus, images):
    train_pop = {}
    for im in images:
        if im.split == "train":
            for p in im.size:
                train_pop[name_of(p)] = train_pop.get(name_of(p), 0) + 1
    return {"closure": corpus["archive_popularity"], "direct": corpus["direct_popularity"],
            "train": train_pop}


def run_source(args, seq, pop, source, roots):
    """Rows (label, single, fleet, x LB 1, x LB 4, mean, max, over, deterministic)."""
    # Nixery promotes paths found in a large share of its package set's closures;
    # here: a quarter of the most popular path's count.
    popular_count = max(1, max(pop.values()) // 4)
    # Closure-count-like sources go in `nixery popularity`'s format; "direct" stays flat, as
    # Nixery writes it, so that the grouping treats it as direct-referrer counts.
    roots = None if source == "direct" else roots
    with tempfile.TemporaryDirectory() as tmp:
        ours = Ours(args.nixery, pop, tmp, roots)
        algos = [("lower-bound", lower_bound, False, 10**9),
                 ("pop-contest (100)", pop_contest, False, 100),
                 ("nixery-dom (94)", lambda im: nixery_dom(im, pop, popular_count), False, 94),
                 ("ours stateless", ours, False, 94),
                 ("ours registry-aware", ours, True, 94)]
        rows, lb = [], None
        for label, fn, aware, budget in algos:
            a = simulate(seq, fn, aware)
            b = simulate(seq, fn, aware)
            s, f, counts, produced = a
            if lb is None:
                lb = (s, f)
            rows.append((label, s, f, s / lb[0], f / lb[1], sum(counts) / len(counts),
                         max(counts), sum(c > budget for c in counts), a[3] == b[3]))
    return rows


def run_corpus(args, name, summary):
    corpus = json.load(gzip.open(os.path.join(HERE, "corpora", f"{name}.json.gz")))
    images = [Image(r) for r in corpus["images"]]
    rng = random.Random(args.seed)
    seq = list(images) + [rng.choice(images) for _ in range(max(0, args.pulls - len(images)))]
    rng.shuffle(seq)
    seq = seq[: args.pulls]
    n_paths = len({p for im in images for p in im.size})
    role = "tuned on" if corpus.get("tuned") else "held out"
    print(f"\ncorpus: {name} ({role}): {len(images)} images, {n_paths} distinct paths; "
          f"{len(seq)} pulls (seed {args.seed}); fleet = {FLEET} clients, separate caches")
    head = ("algorithm", "single MiB", "fleet MiB", "x LB 1", "x LB 4", "mean L", "max L",
            "over", "determ.")
    fmt = "{:<24}{:>11}{:>11}{:>8}{:>8}{:>8}{:>7}{:>6}{:>9}"
    sources = sources_of(corpus, images)
    for source in args.popularity.split(","):
        roots = sum(im.split == "train" for im in images) if source == "train" else \
            corpus["archive_packages"]
        rows = run_source(args, seq, sources[source], source, roots)
        print(f"popularity: {source} ({POP_DOC[source]})")
        print(fmt.format(*head))
        for label, s, f, rs, rf, mean, mx, over, det in rows:
            print(f"{label:<24}{s / 2**20:>11.1f}{f / 2**20:>11.1f}{rs:>8.3f}{rf:>8.3f}"
                  f"{mean:>8.1f}{mx:>7}{over:>6}{'yes' if det else 'NO':>9}")
            if label.startswith("ours"):
                summary.append((name, role, source, label, rs, rf, mean))


def print_summary(summary):
    print(f"\nsummary (goals: x LB 1 <= {GOALS[0]}, x LB 4 <= {GOALS[1]}, "
          f"mean layers <= {GOALS[2]})")
    fmt = "{:<10}{:<10}{:<9}{:<21}{:>8}{:>8}{:>8}{:>6}"
    print(fmt.format("corpus", "role", "pop.", "algorithm", "x LB 1", "x LB 4", "mean L", "met"))
    for name, role, source, label, rs, rf, mean in summary:
        met = rs <= GOALS[0] and rf <= GOALS[1] and mean <= GOALS[2]
        print(f"{name:<10}{role:<10}{source:<9}{label:<21}{rs:>8.3f}{rf:>8.3f}{mean:>8.1f}"
              f"{'yes' if met else 'no':>6}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pulls", type=int, default=120)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nixery", default=os.path.join(REPO, "target", "debug", "nixery"))
    ap.add_argument("--corpora", default="bookworm,families,random,trixie")
    ap.add_argument("--popularity", default="closure,direct",
                    help="popularity sources to run, comma-separated: closure, direct, train")
    args = ap.parse_args()
    if not os.path.exists(args.nixery):
        subprocess.run(["cargo", "build", "-p", "nixery-cli"], cwd=REPO, check=True)
    summary = []
    for name in args.corpora.split(","):
        run_corpus(args, name, summary)
    print_summary(summary)


POP_DOC = {
    "closure": "closure counts over the whole archive, `nixery popularity`'s format",
    "direct": "Nixery's popularity.json format: direct-referrer counts over the archive",
    "train": "how many train-split images hold the path",
}


if __name__ == "__main__":
    main()
