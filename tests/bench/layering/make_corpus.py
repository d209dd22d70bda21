#!/usr/bin/env python3
"""Builds the layering benchmark corpus from Debian's package database.

Provenance: Debian 12 (bookworm) amd64 `Packages` indices as fetched by `apt-get update`
(bookworm main, bookworm-updates main, bookworm-security main), read straight from
/var/lib/apt/lists/*_Packages.lz4 (or the uncompressed/.gz/.xz variants). Later suites
override earlier ones (security > updates > release), as apt's candidate would.

Each Debian package becomes a pseudo store path
    /nix/store/<32 nix-base32 chars of sha256(name=version)>-<name>-<version>
with narSize = Installed-Size * 1024 and references = its resolved Depends + Pre-Depends:
for each clause the first alternative that exists as a real package, else the first
(sorted) provider of that virtual name; clauses that resolve to nothing are dropped.
Debian has dependency cycles (libc6 <-> libgcc-s1); they are kept as they are.

An image is a list of top-level packages, like a Nixery image name: `shell` adds bash,
coreutils, moreutils and nano; ca-certificates and netbase (cacert and iana-etc in
nixpkgs) are always added. Images alternate between a "train" and an "eval" split: the
bench computes popularity from the train split only.

Output: corpus.json.gz next to this script, {"provenance", "images": [{"name", "split",
"packages", "graph": <`nixery layers --graph` input>}], "archive_popularity": {"<name-version>":
count}}, the last being, for each corpus path, how many of the whole archive's package closures
hold it (Nixery's popularity data, for Debian). Deterministic for given indices.
"""

import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LISTS = "/var/lib/apt/lists"
SUITES = ["_bookworm_main_", "_bookworm-updates_main_", "_bookworm-security_main_"]
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


def load_packages():
    files = sorted(glob.glob(os.path.join(LISTS, "*binary-amd64_Packages*")))
    pkgs, provides = {}, {}
    for suite in SUITES:
        for path in (f for f in files if suite in os.path.basename(f)):
            for stanza in read_index(path).split("\n\n"):
                fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*(?:\n .*)*)", stanza, re.M))
                if "Package" not in fields:
                    continue
                name = fields["Package"]
                pkgs[name] = {
                    "version": fields["Version"],
                    "size": int(fields.get("Installed-Size", "0")) * 1024,
                    "deps": ", ".join(
                        d for d in (fields.get("Pre-Depends"), fields.get("Depends")) if d
                    ),
                }
                for v in fields.get("Provides", "").split(","):
                    v = re.sub(r"\(.*?\)", "", v).strip()
                    if v:
                        provides.setdefault(v, set()).add(name)
    if not pkgs:
        sys.exit("no Packages indices found: run apt-get update")
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
        roots += SHELL if part == "shell" else [part]
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


def main():
    pkgs, provides = load_packages()
    images = []
    for i, spec in enumerate(IMAGES):
        graph, roots = image(pkgs, provides, spec)
        images.append({
            "name": spec, "split": "train" if i % 2 == 0 else "eval",
            "packages": roots, "graph": graph,
        })
    wanted = {n for im in images for n in closure_names(pkgs, provides, im["packages"])}
    archive = archive_popularity(pkgs, provides, wanted)
    corpus = {
        "provenance": "Debian 12 bookworm amd64 Packages indices (main, updates, security); "
        "see make_corpus.py for the mapping to store paths",
        "images": images,
        # {"<name-version>": count} over the whole archive (see archive_popularity).
        "archive_popularity": {
            store_path(pkgs, n)[44:]: c for n, c in sorted(archive.items())
        },
    }
    out = os.path.join(HERE, "corpus.json.gz")
    with open(out, "wb") as f:
        # mtime=0 keeps the file byte-identical across runs.
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
            gz.write(json.dumps(corpus, indent=None, sort_keys=True).encode())
    paths = {e["path"] for im in images for e in im["graph"]["graph"]}
    sizes = [len(im["graph"]["graph"]) for im in images]
    print(f"{len(images)} images, {len(paths)} distinct paths, closure sizes "
          f"{min(sizes)}..{max(sizes)} (mean {sum(sizes) / len(sizes):.0f}); wrote {out} "
          f"({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
