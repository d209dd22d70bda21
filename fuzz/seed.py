#!/usr/bin/env python3
"""Write the starting corpus of every fuzz target into fuzz/corpus/<target>/seed-*.

Run once by fuzz/run.sh when a corpus directory is missing; libFuzzer grows the corpora from
these, and the grown corpora are committed (tests/corpora.rs replays them)."""
import glob, hashlib, os, struct, sys

ROOT = os.path.dirname(os.path.abspath(__file__))
LAYER = bytes(i * 7 % 251 for i in range(1000))  # the layer in src/http.rs's fixture
DIGEST = "sha256:" + hashlib.sha256(LAYER).hexdigest()
HASH = "1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h"
NARINFO = (
    "StorePath: /nix/store/p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3\n"
    "URL: nar/1w1f.nar.xz\nCompression: xz\nFileHash: sha256:1w1f\nFileSize: 4029176\n"
    f"NarHash: sha256:{HASH}\nNarSize: 18735072\n"
    "References: p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3 0d71ygfwbmy1xjlbj1v027dfmy9cqavy-libffi-3.3\n"
    "Deriver: 7c0sr3hv1dx6jd3lyxqfa2zxsa3a4lgp-ruby-2.7.3.drv\nSig: a:AAAA\n"
)


def s(b):
    return struct.pack("<Q", len(b)) + b + b"\0" * (-len(b) % 8)


def node(n):
    out = s(b"(") + s(b"type")
    if isinstance(n, dict):
        out += s(b"directory")
        for name in sorted(n):
            out += s(b"entry") + s(b"(") + s(b"name") + s(name) + s(b"node") + node(n[name]) + s(b")")
    elif isinstance(n, tuple):  # ("link", target)
        out += s(b"symlink") + s(b"target") + s(n[1])
    else:
        exe, data = n
        out += s(b"regular") + (s(b"executable") + s(b"") if exe else b"") + s(b"contents") + s(data)
    return out + s(b")")


def nar(n):
    return s(b"nix-archive-1") + node(n)


SEEDS = {
    "image_name": [b"hello", b"shell/git/htop", b"zstd/shell/hello", b"arm64/hello", b"a.b__c--d/e", b"Hello", b"shell"],
    "registry_request": [
        b"\x00/v2/", b"\x00/v2/hello/manifests/latest", b"\x01/v2/hello/manifests/latest",
        b"\x00/v2/hello/tags/list?n=2&last=a", b"\x08/v2/hello/manifests/latest\n=basic",
        b"\x08/token?service=registry.example.org&scope=repository:hello:pull\n=basic",
        b"\x00/v2/hello/blobs/" + DIGEST.encode(), b"\x00/", b"\x02/v2/hello/blobs/uploads/",
        b"\x08/v2/hello/manifests/latest\nBearer e30.e30.x",
    ],
    "range": [b"bytes=0-10", b"bytes=-5", b"bytes=990-", b"bytes=0-1,5-6", b"bytes=2000-"],
    "narinfo": [NARINFO.encode(), b"nar/abc.nar.xz", b"nar/../x"],
    "nar": [
        nar((False, b"hello\n")),
        nar(("link", b"../x")),
        nar({b"bin": {b"hello": (True, b"\x7fELF")}, b"lib": ("link", b"bin"), b"share": {}}),
    ],
    "signature": [
        ("k:" + "A" * 43 + "=\n" + NARINFO).encode(),
        ("fuzz-1:ACfe\n" + NARINFO).encode(),
        b"a:AAAA b:BBBB\n" + NARINFO.encode(),
    ],
    "apigw_event": [],
    "tar_round_trip": [bytes(range(64)), bytes(range(255, 0, -3)), b"\x01" * 100 + b"hello" * 20],
}

for path in sorted(glob.glob(os.path.join(ROOT, "../tests/fixtures/apigw/*.json"))):
    SEEDS["apigw_event"].append(open(path, "rb").read().replace(b"{{DIGEST}}", DIGEST.encode()))

targets = sys.argv[1:] or list(SEEDS)
for target in targets:
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(SEEDS[target]):
        with open(os.path.join(d, f"seed-{i}"), "wb") as f:
            f.write(data)
