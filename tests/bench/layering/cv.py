#!/usr/bin/env python3
"""Leave-one-family-out cross-validation of the join rule's thresholds.

    python3 tests/bench/layering/cv.py [--nixery PATH]

The images of the bookworm and families corpora (one Debian archive, one popularity) are put in
package families. For each family: the thresholds are chosen on the other families' images
(the fewest bytes among the settings within the layer goal there), then scored on the held-out
family, registry-aware. Thresholds: the miss-rate cap and
the cost cap of the join rule, and the room reused layers leave for an image's own layers.

The grouping is modelled here in Python so that thresholds can vary; before the folds, the
model must give exactly the layers `nixery layers` gives with the shipped thresholds for every
image of both corpora (so the model is the rule, not an approximation of it).
"""

import argparse
import gzip
import json
import os
import random
import sys

from bench import HERE, REPO, GOALS, Image, Ours, lower_bound, name_of, simulate

PPM = 1_000_000
TARGET, BUDGET = 60, 94
SHIPPED = (500_000, 250_000, 30)  # miss cap (ppm), cost cap (bytes), room for own layers
GRID = [(m, c, r) for m in (400_000, 500_000, 600_000) for c in (100_000, 250_000, 500_000)
        for r in (10, 20, 30)]

FAMILIES = {
    "clients": "git curl wget openssh-client rsync aria2 lftp git-lfs tig mercurial subversion",
    "editors": "vim nano emacs-nox neovim",
    "languages": "python3 perl nodejs ruby golang-go rustc php-cli lua5.4 openjdk-17-jre-headless "
                 "erlang-nox elixir ghc ocaml-nox guile-3.0 tcl r-base-core scala clojure maven "
                 "python3-numpy python3-flask python3-requests ruby-rails php-fpm",
    "build": "make gcc gdb strace cmake clang meson valgrind autoconf shellcheck ninja-build",
    "servers": "nginx postgresql mariadb-server redis-server memcached apache2 haproxy squid bind9 "
               "postfix dovecot-imapd openssh-server samba sqlite3 postgresql-client "
               "mariadb-client redis-tools",
    "network": "nmap tcpdump iproute2 bind9-dnsutils socat openvpn wireguard-tools nftables "
               "mtr-tiny iperf3",
    "media": "imagemagick ffmpeg graphviz pandoc ghostscript poppler-utils sox flac",
    "utils": "htop jq tmux zsh less ripgrep tree file unzip zstd gnupg bash",
    "devops": "awscli ansible podman buildah skopeo",
}


def family(spec):
    tools = [p for p in spec.split("/") if p != "shell"] or ["bash"]
    for fam, names in FAMILIES.items():
        if tools[0] in names.split():
            return fam
    sys.exit(f"{spec}: no family")


# ---------------------------------------------------------------- the grouping, modelled


def miss_ppm(frm, to):
    to = max(to, 1)
    return (to - min(frm, to)) * PPM // to


def join(img, counts, remaining, miss_cap, cost_cap):
    names = sorted(remaining)
    index = {p: i for i, p in enumerate(names)}
    edges = sorted((miss_ppm(counts[n], counts[r]), i, index[r])
                   for i, n in enumerate(names) for r in img.refs[n] if r in index and r != n)
    parent, size = list(range(len(names))), [img.size[n] for n in names]

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for miss, i, j in edges:
        a, b = find(i), find(j)
        if a != b and (miss <= 20_000 or (miss <= miss_cap and miss * size[b] <= cost_cap * PPM)):
            lo, hi = min(a, b), max(a, b)
            parent[hi] = lo
            size[lo] += size[hi]
    groups = {}
    for i, n in enumerate(names):
        groups.setdefault(find(i), []).append(n)
    return [(sum(img.size[p] for p in g), sorted(g)) for g in groups.values()]


def select_known(img, known, target):
    fitting = [k for k in known if all(p in img.size for p in k)]
    fitting.sort(key=lambda k: (-sum(img.size[p] for p in k), sorted(k)))
    chosen, taken = [], set()
    for k in fitting:
        if len(chosen) == target:
            break
        if not taken & k:
            taken |= k
            chosen.append(k)
    if len(chosen) == target and len(taken) < len(img.size):
        taken -= chosen.pop()
    return chosen, [p for p in img.size if p not in taken]


def merge_smallest(layers, cap):
    if len(layers) <= cap:
        return layers
    layers.sort()
    cut = len(layers) - (cap - 1)
    merged = sorted(p for _, g in layers[:cut] for p in g)
    return [(sum(s for s, _ in layers[:cut]), merged)] + layers[cut:]


class Model:
    def __init__(self, pop, params):
        self.pop, (self.miss_cap, self.cost_cap, self.room) = pop, params

    def __call__(self, img, known=()):
        reused, remaining = select_known(img, known, TARGET)
        counts = {p: self.pop.get(name_of(p), 0) for p in img.size}
        cap = min(max(TARGET - len(reused), self.room), BUDGET - len(reused))
        new = join(img, counts, remaining, self.miss_cap, self.cost_cap) if remaining else []
        return list(reused) + [frozenset(g) for _, g in merge_smallest(new, cap)]


# ---------------------------------------------------------------- folds


def sequence(images, seed=1):
    rng = random.Random(seed)
    seq = list(images) + [rng.choice(images) for _ in range(len(images))]
    rng.shuffle(seq)
    return seq


def score(images, pop, params):
    seq = sequence(images)
    lb = simulate(seq, lower_bound)
    s, f, counts, _ = simulate(seq, Model(pop, params), registry_aware=True)
    return s / lb[0], f / lb[1], sum(counts) / len(counts)


def choose(images, pop):
    """The fewest bytes (egress is the bill) among settings within the layer goal."""
    def key(params):
        one, fleet, mean = score(images, pop, params)
        return (max(mean - GOALS[2], 0), one + fleet, params)
    return min(GRID, key=key)


def check_model(binary, images, pop, roots):
    """The model must give the binary's layers, image by image, registry-aware."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        ours, model, known = Ours(binary, pop, tmp, roots), Model(pop, SHIPPED), []
        for img in sequence(images):
            a, b = ours(img, list(known)), model(img, list(known))
            if sorted(sorted(x) for x in a) != sorted(sorted(x) for x in b):
                sys.exit(f"the model differs from nixery layers on {img.name}")
            known += [layer for layer in a if layer not in known]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nixery", default=os.path.join(REPO, "target", "debug", "nixery"))
    args = ap.parse_args()
    images, pop = [], {}
    for name in ("bookworm", "families"):
        corpus = json.load(gzip.open(os.path.join(HERE, "corpora", f"{name}.json.gz")))
        images += [Image(r) for r in corpus["images"]]
        pop.update(corpus["archive_popularity"])
    check_model(args.nixery, images, pop, corpus["archive_packages"])
    print(f"model = nixery layers on all {len(images)} images; grid of {len(GRID)} settings; "
          f"shipped {SHIPPED}")
    print(f"{'held out':<10}{'images':>7}  {'chosen on the rest':<26}{'x LB 1':>8}{'x LB 4':>8}"
          f"{'mean L':>8}  shipped: x LB 1 / 4, mean L")
    for fam in FAMILIES:
        test = [im for im in images if family(im.name) == fam]
        train = [im for im in images if family(im.name) != fam]
        params = choose(train, pop)
        one, fleet, mean = score(test, pop, params)
        s1, s4, sm = score(test, pop, SHIPPED)
        print(f"{fam:<10}{len(test):>7}  {str(params):<26}{one:>8.3f}{fleet:>8.3f}{mean:>8.1f}"
              f"  {s1:.3f} / {s4:.3f}, {sm:.1f}")


if __name__ == "__main__":
    main()
