#!/usr/bin/env python3
"""Build a fake Nix store of real files for the packing benchmark.

    make_store.py DEST --mb 800

DEST/<32-char hash>-<name>-<n>/... holds copies of this machine's own files (/usr/bin,
/usr/lib, /usr/share: binaries, shared libraries, text), about 100 MB per store path, taken in
sorted order so the same machine gives the same store. Like `nix store optimise`, a last store
path hard-links every 20th file of the others (so each of those files has two names), and
modes are the store's: 0444/0555 files, 0555 directories. Prints the store paths, one a line.
"""
import argparse
import hashlib
import os
import shutil
import stat
import sys

# (directory, name, share of the total): binaries, libraries, then text and data.
SOURCES = [
    ("/usr/bin", "bin", 0.3),
    ("/usr/lib/x86_64-linux-gnu", "libs", 0.4),
    ("/usr/share", "share", 0.3),
]
PER_PATH = 100 * 1000 * 1000
NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"


def store_hash(name):
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(NIX32[b % 32] for b in digest[:32])


def files(src):
    for root, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):
                yield path, st.st_size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dest")
    ap.add_argument("--mb", type=int, default=800)
    args = ap.parse_args()
    budget = args.mb * 1000 * 1000
    os.makedirs(args.dest, exist_ok=True)
    total, seen, paths, copied = 0, set(), [], []
    for src, label, share in SOURCES:
        n, current, size, taken = 0, None, PER_PATH, 0
        for path, length in files(src):
            if taken >= budget * share:
                break
            real = os.path.realpath(path)
            if real in seen or length > 64 << 20:
                continue
            seen.add(real)
            if size >= PER_PATH:
                n += 1
                name = f"{label}-{n}"
                current = os.path.join(args.dest, f"{store_hash(name)}-{name}")
                paths.append(current)
                size = 0
            target = os.path.join(current, os.path.relpath(path, src))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                shutil.copyfile(path, target)
            except OSError:
                continue
            executable = os.stat(path).st_mode & 0o111
            os.chmod(target, 0o555 if executable else 0o444)
            copied.append(target)
            size += length
            taken += length
            total += length
    linked = os.path.join(args.dest, f"{store_hash('optimised')}-optimised")
    for i, target in enumerate(copied[::20]):
        dest = os.path.join(linked, f"{i:05d}-{os.path.basename(target)}")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.link(target, dest)
    paths.append(linked)
    for root, dirs, _ in os.walk(args.dest):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o555)
    print("\n".join(sorted(paths)))
    print(f"{total / 1e6:.0f} MB in {len(copied)} files, {len(copied[::20])} hard-linked",
          file=sys.stderr)


if __name__ == "__main__":
    main()
