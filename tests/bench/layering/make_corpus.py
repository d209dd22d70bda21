#!/usr/bin/env python3
"""Builds the layering benchmark corpora from Debian's package database.

    python3 make_corpus.py [--only bookworm,families,random,trixie] [--check-with NIXERY]

Provenance: Debian amd64 `Packages` indices as fetched by `apt-get update`, read straight from
the apt lists directory (*_Packages.lz4, or the uncompressed/.gz/.xz variants):
- Debian 12 (bookworm main, bookworm-updates main, bookworm-security main) from
  /var/lib/apt/lists; later suites override earlier ones, as apt's candidate would;
- Debian 13 (trixie main) from $TRIXIE_LISTS (default /tmp/trixie-lists), fetched without
  touching the system's apt state:
      echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
          http://deb.debian.org/debian trixie main" > /tmp/trixie.list
      apt-get update -o Dir::Etc::SourceList=/tmp/trixie.list \
          -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=/tmp/trixie-lists

Corpora (corpora/<name>.json.gz):
- bookworm: the images the grouping rule was designed and tuned on;
- families: held out, never tuned on: other package families (servers, databases, other
  languages, build and media tools, network tools);
- random: held out: 62 images of 1-3 packages drawn with a fixed seed from the archive's
  programs (sections of tools, not libraries or data), 40 % with `shell`;
- trixie: held out: the bookworm image list on Debian 13's graph (other versions, sizes and
  dependencies).

Each Debian package becomes a pseudo store path
    /nix/store/<32 nix-base32 chars of sha256(name=version)>-<name>-<version>
with narSize = Installed-Size * 1024 and references = its resolved Depends + Pre-Depends:
for each clause the first alternative that exists as a real package, else the first
(sorted) provider of that virtual name; clauses that resolve to nothing are dropped.
Debian has dependency cycles (libc6 <-> libgcc-s1); they are kept as they are.

An image is a list of top-level packages, like a Nixery image name: `shell` adds bash,
coreutils, moreutils and nano; ca-certificates and netbase (cacert and iana-etc in
nixpkgs) are always added; `a|b` takes the first that exists. Images alternate between a
"train" and an "eval" split (the bench's optional "train" popularity uses the train split).

Output per corpus: {"provenance", "tuned", "archive_packages", "images": [{"name", "split", "packages", "graph":
<`nixery layers --graph` input>}], "archive_popularity": {"<name-version>": count},
"direct_popularity": {"<name-version>": count}}:
- archive_popularity: how many of the whole archive's package closures hold each corpus path
  (closure counts, what `nixery popularity` computes for a channel);
- direct_popularity: Nixery's popularity.json for this archive, as its popcount computes it:
  1 (the self-reference) + how many archive packages depend on the path directly, entries
  of 1 dropped.
Deterministic for given indices. With --check-with, the archive's closure counts are also
computed by `nixery popularity --path-info` and must agree.
"""

import argparse
import glob
import gzip
import hashlib
import json
import lzma
import os
import random
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LISTS = "/var/lib/apt/lists"
TRIXIE_LISTS = os.environ.get("TRIXIE_LISTS", "/tmp/trixie-lists")
BOOKWORM = (LISTS, ["_bookworm_main_", "_bookworm-updates_main_", "_bookworm-security_main_"])
TRIXIE = (TRIXIE_LISTS, ["_trixie_main_"])
NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
ALWAYS = ["ca-certificates", "netbase"]
SHELL = ["bash", "coreutils", "moreutils", "nano"]

# Single tools, then shell-plus-tools combinations. "shell" expands to SHELL.
IMAGES = [
    "git", "curl", "wget", "htop", "jq", "vim", "nano", "python3", "perl", "nodejs",
    "openssh-client", "rsync", "tmux", "zsh", "less", "make", "gcc", "ripgrep", "tree",
    "file", "unzip", "zstd", "sqlite3", "postgresql-client", "mariadb-client",
    "redis-tools", "nginx", "emacs-nox", "neovim", "graphviz", "gnupg", "socat", "nmap",
    "tcpdump", "iproute2", "bind9-dnsutils", "strace", "gdb", "ruby", "golang-go",
    "rustc", "php-cli", "lua5.4", "openjdk-17-jre-headless", "mercurial", "subversion",
    "shellcheck", "imagemagick", "ffmpeg", "awscli",
    "shell", "shell/git", "shell/curl", "shell/git/curl", "shell/git/htop",
    "shell/curl/jq", "shell/python3", "shell/python3/git", "shell/vim/git",
    "shell/openssh-client/rsync", "shell/nodejs/git", "shell/gcc/make/git",
    "shell/tmux/htop/vim", "shell/postgresql-client/curl", "shell/ruby/git",
    "shell/golang-go/git/make", "shell/jq/curl/openssh-client", "shell/nmap/tcpdump/iproute2",
    "shell/strace/gdb", "shell/neovim/ripgrep/git", "git/curl/jq", "python3/curl",
    "nodejs/python3/make/gcc", "shell/awscli/jq", "shell/rustc/git",
]

# Held out: package families absent from IMAGES, never used while designing the rule.
FAMILY_IMAGES = [
    "postgresql", "mariadb-server", "redis-server", "memcached", "apache2", "haproxy",
    "squid", "bind9", "postfix", "dovecot-imapd", "openssh-server", "samba",
    "python3-numpy", "python3-flask", "python3-requests", "erlang-nox", "elixir", "ghc",
    "ocaml-nox", "guile-3.0", "tcl", "r-base-core", "maven", "scala", "clojure", "php-fpm",
    "ruby-rails", "ansible", "podman", "buildah", "skopeo", "git-lfs", "tig", "meson",
    "cmake", "clang", "valgrind", "autoconf", "pandoc", "ghostscript", "poppler-utils", "sox",
    "flac", "aria2", "lftp", "openvpn", "wireguard-tools", "nftables", "mtr-tiny", "iperf3",
    "shell/postgresql/redis-server", "shell/python3-numpy/python3-requests",
    "shell/cmake/clang/ninja-build", "shell/meson/ninja-build/pkg-config", "shell/ansible/git",
    "shell/podman/skopeo", "shell/pandoc/ghostscript", "shell/aria2/lftp",
    "shell/nftables/iperf3/mtr-tiny", "shell/erlang-nox/elixir", "shell/ghc/tig",
    "python3-flask/python3-requests",
]

# Debian sections whose packages are programs a user would name in an image.
PROGRAM_SECTIONS = {
    "admin", "database", "devel", "editors", "httpd", "interpreters", "mail", "net", "shells",
    "text", "utils", "vcs", "web", "graphics", "sound", "video", "science", "math",
    "python", "perl", "ruby", "javascript", "golang", "rust", "java", "php", "lisp", "haskell",
    "ocaml", "otherosfs", "embedded", "electronics",
}
NOT_PROGRAMS = re.compile(r"^lib|-(dev|doc|data|common|dbg|examples)$|^fonts-|-l10n|-locales")


def nix32(data: bytes) -> str:
    """Nix's base-32 of a 20-byte digest: 32 chars, last char from the low bits."""
    n = int.from_bytes(data[:20], "little")
    return "".join(NIX32[(n >> (5 * i)) & 31] for i in range(31, -1, -1))


def read_index(path):
    if path.endswith(".lz4"):
        return subprocess.run(["lz4", "-dc", path], check=True, capture_output=True).stdout.decode()
    if path.endswith(".gz"):
        return gzip.open(path, "rt").read()
    if path.endswith(".xz"):
        return lzma.open(path, "rt").read()
    return open(path).read()


def load_packages(release):
    lists, suites = release
    files = sorted(glob.glob(os.path.join(lists, "*binary-amd64_Packages*")))
    pkgs, provides = {}, {}
    for suite in suites:
        for path in (f for f in files if suite in os.path.basename(f)):
            for stanza in read_index(path).split("\n\n"):
                fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*(?:\n .*)*)", stanza, re.M))
                if "Package" not in fields:
                    continue
                name = fields["Package"]
                pkgs[name] = {
                    "version": fields["Version"],
                    "size": int(fields.get("Installed-Size", "0")) * 1024,
                    "section": fields.get("Section", "").split("/")[-1],
                    "deps": ", ".join(
                        d for d in (fields.get("Pre-Depends"), fields.get("Depends")) if d
                    ),
                }
                for v in fields.get("Provides", "").split(","):
                    v = re.sub(r"\(.*?\)", "", v).strip()
                    if v:
                        provides.setdefault(v, set()).add(name)
    if not pkgs:
        sys.exit(f"no Packages indices in {lists}: run apt-get update (see the doc above)")
    return pkgs, {v: sorted(p) for v, p in provides.items()}


def resolve(pkgs, provides, name):
    name = name.split(":")[0]
    if name in pkgs:
        return name
    for p in provides.get(name, []):
        if p in pkgs:
            return p
    return None


def references(pkgs, provides, name):
    refs = set()
    for clause in pkgs[name]["deps"].split(","):
        for alt in clause.split("|"):
            alt = re.sub(r"[\(\[<].*", "", alt).strip()
            target = resolve(pkgs, provides, alt) if alt else None
            if target:
                if target != name:
                    refs.add(target)
                break
    return sorted(refs)


def store_path(pkgs, name):
    version = pkgs[name]["version"]
    safe = re.sub(r"[^A-Za-z0-9+._?=-]", "_", version)
    digest = nix32(hashlib.sha256(f"{name}={version}".encode()).digest())
    return f"/nix/store/{digest}-{name}-{safe}"


def closure_names(pkgs, provides, roots):
    closure, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n not in closure:
            closure.add(n)
            todo += references(pkgs, provides, n)
    return closure


def image(pkgs, provides, spec):
    roots = []
    for part in spec.split("/"):
        alternatives = [a for a in part.split("|") if a in pkgs] or [part]
        roots += SHELL if part == "shell" else alternatives[:1]
    roots = sorted(set(roots + ALWAYS))
    missing = [r for r in roots if r not in pkgs]
    if missing:
        sys.exit(f"{spec}: unknown packages {missing}")
    closure = closure_names(pkgs, provides, roots)
    refs = {n: references(pkgs, provides, n) for n in closure}

    def closure_size(n):
        seen, todo = set(), [n]
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += refs[m]
        return sum(pkgs[m]["size"] for m in seen)

    entries = [
        {
            "path": store_path(pkgs, n),
            "narSize": pkgs[n]["size"],
            "closureSize": closure_size(n),
            "references": sorted(store_path(pkgs, r) for r in refs[n]),
        }
        for n in sorted(closure)
    ]
    return {
        "exportReferencesGraph": {"graph": [store_path(pkgs, r) for r in roots]},
        "graph": entries,
    }, roots


def archive_popularity(pkgs, provides, wanted):
    """For each package in `wanted`: how many packages of the whole archive have it in
    their closure (itself included), like Nixery's popularity data for nixpkgs."""
    names = sorted(pkgs)
    refs = {n: references(pkgs, provides, n) for n in names}
    bit = {n: i for i, n in enumerate(sorted(wanted))}
    # Tarjan's SCCs, iteratively; they come out sinks first, so every successor SCC
    # already has its closure mask when an SCC is finished.
    index, low, on, stack, mask = {}, {}, set(), [], {}
    counter = 0
    for start in names:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            n, i = work.pop()
            if i == 0:
                index[n] = low[n] = counter
                counter += 1
                stack.append(n)
                on.add(n)
            if i < len(refs[n]):
                work.append((n, i + 1))
                m = refs[n][i]
                if m not in index:
                    work.append((m, 0))
                elif m in on:
                    low[n] = min(low[n], index[m])
                continue
            for m in refs[n]:
                if m in on:
                    low[n] = min(low[n], low[m])
            if low[n] == index[n]:
                scc = []
                while True:
                    m = stack.pop()
                    on.discard(m)
                    scc.append(m)
                    if m == n:
                        break
                acc = 0
                for m in scc:
                    acc |= 1 << bit[m] if m in bit else 0
                    for r in refs[m]:
                        acc |= mask.get(r, 0)
                for m in scc:
                    mask[m] = acc
    counts = [0] * len(bit)
    for n in names:
        m = mask[n]
        while m:
            low_bit = m & -m
            counts[low_bit.bit_length() - 1] += 1
            m ^= low_bit
    return {w: counts[i] for w, i in bit.items()}


def direct_popularity(pkgs, provides, wanted):
    """Nixery's popcount for this archive: for each package in `wanted`, 1 (narinfo
    References list the path itself) + how many archive packages reference it directly;
    entries of 1 are dropped, as popcount drops them."""
    count = {w: 1 for w in wanted}
    for n in sorted(pkgs):
        for r in references(pkgs, provides, n):
            if r in count:
                count[r] += 1
    return {w: c for w, c in count.items() if c > 1}


def random_images(pkgs, seed=10, n=62):
    """Held-out images: 1-3 programs drawn from the archive with a fixed seed."""
    programs = sorted(p for p, v in pkgs.items()
                      if v["section"] in PROGRAM_SECTIONS and not NOT_PROGRAMS.search(p))
    rng = random.Random(seed)
    specs = []
    while len(specs) < n:
        parts = sorted(rng.sample(programs, rng.choice([1, 1, 2, 3])))
        spec = "/".join((["shell"] if rng.random() < 0.4 else []) + parts)
        if spec not in specs:
            specs.append(spec)
    return specs


CORPORA = {
    # name: (release, image specs or a function of the packages, tuned on)
    "bookworm": (BOOKWORM, IMAGES, True),
    "families": (BOOKWORM, FAMILY_IMAGES, False),
    "random": (BOOKWORM, random_images, False),
    "trixie": (TRIXIE, [s.replace("openjdk-17", "openjdk-21") for s in IMAGES], False),
}


def build_corpus(name, pkgs, provides):
    release, specs, tuned = CORPORA[name]
    specs = specs(pkgs) if callable(specs) else specs
    images = []
    for i, spec in enumerate(specs):
        graph, roots = image(pkgs, provides, spec)
        images.append({
            "name": spec, "split": "train" if i % 2 == 0 else "eval",
            "packages": roots, "graph": graph,
        })
    wanted = {n for im in images for n in closure_names(pkgs, provides, im["packages"])}
    archive = archive_popularity(pkgs, provides, wanted)
    direct = direct_popularity(pkgs, provides, wanted)
    key = lambda n: store_path(pkgs, n)[44:]  # noqa: E731 "<name-version>"
    return {
        "provenance": f"Debian {'/'.join(s.strip('_') for s in release[1])} amd64 Packages "
        "indices; see make_corpus.py for the mapping to store paths",
        "tuned": tuned,
        "archive_packages": len(pkgs),
        "images": images,
        "archive_popularity": {key(n): c for n, c in sorted(archive.items())},
        "direct_popularity": {key(n): c for n, c in sorted(direct.items())},
    }


def check_with(nixery, pkgs, provides, corpus):
    """The archive's closure counts from `nixery popularity --path-info` (every package a
    root) must equal archive_popularity: the Rust counting checked at archive scale."""
    entries = [{"path": store_path(pkgs, n), "narSize": pkgs[n]["size"],
                "references": [store_path(pkgs, r) for r in references(pkgs, provides, n)]}
               for n in sorted(pkgs)]
    with tempfile.TemporaryDirectory() as tmp:
        info, out = os.path.join(tmp, "path-info.json"), os.path.join(tmp, "counts.json")
        with open(info, "w") as f:
            json.dump(entries, f)
        started = time.monotonic()
        subprocess.run([nixery, "popularity", "--path-info", info, "-o", out], check=True)
        took = time.monotonic() - started
        counts = json.load(open(out))["counts"]
    wrong = {k: (v, counts.get(k)) for k, v in corpus["archive_popularity"].items()
             if counts.get(k) != v}
    print(f"  nixery popularity over {len(entries)} paths: {took:.1f} s; "
          f"{len(wrong)} of {len(corpus['archive_popularity'])} counts differ")
    if wrong:
        sys.exit(f"counts differ, e.g. {sorted(wrong.items())[:5]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(CORPORA))
    ap.add_argument("--check-with", metavar="NIXERY", help="cross-check closure counts")
    args = ap.parse_args()
    os.makedirs(os.path.join(HERE, "corpora"), exist_ok=True)
    loaded = {}
    for name in args.only.split(","):
        release = CORPORA[name][0]
        if release[0] not in loaded:
            loaded[release[0]] = load_packages(release)
        pkgs, provides = loaded[release[0]]
        corpus = build_corpus(name, pkgs, provides)
        out = os.path.join(HERE, "corpora", f"{name}.json.gz")
        with open(out, "wb") as f:
            # mtime=0 keeps the file byte-identical across runs.
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
                gz.write(json.dumps(corpus, indent=None, sort_keys=True).encode())
        images = corpus["images"]
        paths = {e["path"] for im in images for e in im["graph"]["graph"]}
        sizes = [len(im["graph"]["graph"]) for im in images]
        print(f"{name}: {len(images)} images, {len(paths)} distinct paths, closure sizes "
              f"{min(sizes)}..{max(sizes)} (mean {sum(sizes) / len(sizes):.0f}); wrote {out} "
              f"({os.path.getsize(out)} bytes)")
        if args.check_with and name == "bookworm":
            check_with(args.check_with, pkgs, provides, corpus)


if __name__ == "__main__":
    main()
