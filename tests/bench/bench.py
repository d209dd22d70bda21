#!/usr/bin/env python3
"""Nixery's performance benchmarks: layering, packing, serving, cold build; one table at the end.

    tests/bench/run.sh                      # installs the tools, builds, runs this
    python3 tests/bench/bench.py [--only pack,serve,cold,layering] [--repeat 3] [--mb 800,200]

Needs a release build (target/release/nixery), tar, gzip, pigz, zstd, nginx and wrk. Scratch
data (the generated stores, storage dirs) goes to target/bench/, never into the repository.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NIXERY = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")),
                      "release", "nixery")
SCRATCH = os.path.join(REPO, "target", "bench")
PKGS = os.path.join(REPO, "nix", "pkgs")
IMAGE = "shell/git"
ROWS = []  # (benchmark, metric, nixery, baseline name, baseline, ratio, goal, met)


def row(bench, metric, ours, base_name="", base=None, goal="", ratio=None, met=None):
    ROWS.append((bench, metric, ours, base_name, base, ratio, goal, met))


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def sha256_cmd(cmd):
    out = subprocess.run(f"{cmd} | sha256sum", shell=True, check=True, capture_output=True,
                         text=True).stdout
    return "sha256:" + out.split()[0]


def timed(argv, **kw):
    """Run to completion; (wall s, cpu s, peak RSS MiB, stdout) of it and its waited children."""
    # GNU time reports the peak RSS of the command itself (wait4's would include the RSS of
    # this Python process, which a forked child keeps across exec).
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.monotonic()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv],
                                stdout=subprocess.PIPE, **kw)
        out = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{argv} failed: {status}")
        peak = int(rss.read().split()[-1]) / 1024
    return wall, ru.ru_utime + ru.ru_stime, peak, out


# ---------------------------------------------------------------- packing


def make_store(mb):
    dest = os.path.join(SCRATCH, f"store-{mb}")
    done = os.path.join(SCRATCH, f"store-{mb}.paths")
    if not os.path.exists(done):
        if os.path.exists(dest):
            subprocess.run(["chmod", "-R", "u+w", dest], check=True)
            shutil.rmtree(dest)
        log(f"pack: generating a {mb} MB store in {dest}")
        out = subprocess.run([sys.executable, os.path.join(HERE, "pack", "make_store.py"), dest,
                              "--mb", str(mb)], check=True, capture_output=True, text=True)
        with open(done, "w") as f:
            f.write(out.stdout)
    paths = open(done).read().split()
    # Input size counts each hard-linked file once; expected link entries are the extra names.
    inodes, size, links = set(), 0, 0
    for p in paths:
        for root, _, names in os.walk(p):
            for n in names:
                st = os.lstat(os.path.join(root, n))
                if st.st_ino in inodes:
                    links += 1
                    continue
                inodes.add(st.st_ino)
                size += st.st_size if os.path.isfile(os.path.join(root, n)) else 0
    # Warm the page cache, so every contender reads from memory.
    subprocess.run(["tar", "-cf", "/dev/null", "-C", dest, "."], check=True)
    return dest, paths, size, links


MBYTES = {}


def mbytes_of(mb):
    return MBYTES[mb]


def bench_pack(args):
    sizes = [int(m) for m in args.mb.split(",")]
    tmp = tempfile.mkdtemp(dir=SCRATCH)
    results = {}
    for i, mb in enumerate(sizes):
        dest, paths, size, links = make_store(mb)
        mbytes = size / 1e6
        log(f"pack: {mbytes:.0f} MB of files in {len(paths)} store paths, {links} hard links")
        out = os.path.join(tmp, "out")
        tar = (f"tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@1 "
               f"-C {dest} -cf - .")
        hashed = f" | tee >(sha256sum > {tmp}/tar.sha) | {{}} | tee {out} | sha256sum > {tmp}/z.sha"
        contenders = [
            ("nixery gzip (default)", [NIXERY, "pack", "--output", out, *paths], "gzip"),
        ]
        if i == 0:
            contenders += [
                ("nixery gzip -6", [NIXERY, "pack", "--level", "6", "--output", out, *paths],
                 "gzip"),
                ("nixery zstd -3", [NIXERY, "pack", "--compression", "zstd", "--output", out,
                                    *paths], "zstd"),
                ("tar | pigz -6", ["bash", "-c", tar + hashed.format("pigz -6")], None),
                ("tar | gzip -6", ["bash", "-c", tar + hashed.format("gzip -6")], None),
            ]
        for name, argv, kind in contenders:
            runs, digests = [], set()
            repeat = 1 if name == "tar | gzip -6" else args.repeat
            for r in range(repeat):
                wall, cpu, rss, stdout = timed(argv)
                runs.append((wall, cpu, rss))
                if kind:
                    d = json.loads(stdout)
                    digests.add(d["digest"])
                    if r == 0:
                        unpack = "gzip -dc" if kind == "gzip" else "zstd -dc"
                        ok = (d["digest"] == sha256_file(out) and d["size"] == os.path.getsize(out)
                              and d["diff_id"] == sha256_cmd(f"{unpack} {out}"))
                        stored = int(subprocess.run(
                            f"{unpack} {out} | tar -tvf - | grep -c '^h'", shell=True,
                            capture_output=True, text=True).stdout.strip() or 0)
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            MBYTES[mb] = mbytes
            res = dict(mbps=mbytes / wall, cpu=cpu, rss=rss, size=os.path.getsize(out), wall=wall)
            if kind:
                res.update(ok=ok, same=len(digests) == 1, links_ok=stored == links)
            results[(mb, name)] = res
            log(f"pack {mb} MB {name}: {res}")
    big = sizes[0]
    pigz = results[(big, "tar | pigz -6")]
    gz = results[(big, "tar | gzip -6")]
    for (mb, name), r in results.items():
        bench = f"pack {mb} MB"
        ours = name.startswith("nixery")
        if ours:
            tput = r["mbps"] / pigz["mbps"]
            goal = ">= 2" if name.endswith("(default)") else ""
            row(bench, f"{name}: input MB/s", r["mbps"], "pigz -6", pigz["mbps"], goal, tput,
                tput >= 2 if goal else None)
            if mb == big:
                row(bench, f"{name}: CPU s", r["cpu"], "pigz -6", pigz["cpu"], "",
                    r["cpu"] / pigz["cpu"])
            # Throughput per CPU second: what the wall-clock ratio is on an idle machine, where
            # both use every core; on a shared one, the scheduler decides the wall clock.
            per_cpu = (mbytes_of(mb) / r["cpu"]) / (mbytes_of(big) / pigz["cpu"])
            row(bench, f"{name}: input MB per CPU s", mbytes_of(mb) / r["cpu"], "pigz -6",
                mbytes_of(big) / pigz["cpu"], "", per_cpu)
            if mb == big:
                ratio = r["size"] / pigz["size"]
                gz_goal = "<= 1.05" if "gzip" in name else ""
                row(bench, f"{name}: output MB", r["size"] / 1e6, "pigz -6", pigz["size"] / 1e6,
                    gz_goal, ratio, ratio <= 1.05 if gz_goal else None)
            row(bench, f"{name}: peak RSS MiB", r["rss"], "", None, "<= 64", None, r["rss"] <= 64)
            checks = r["ok"] and r["same"] and r["links_ok"]
            row(bench, f"{name}: digests right, same every run, hard links once",
                "yes" if checks else "NO", "", None, "yes", None, checks)
        elif mb == big:
            row(bench, f"{name}: input MB/s", r["mbps"])
            row(bench, f"{name}: output MB", r["size"] / 1e6)
            row(bench, f"{name}: CPU s", r["cpu"])
    row(f"pack {big} MB", "tar | gzip -6 vs pigz -6: input MB/s", gz["mbps"], "pigz -6",
        pigz["mbps"], "", gz["mbps"] / pigz["mbps"])
    shutil.rmtree(tmp)


# ---------------------------------------------------------------- serving


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nixery(storage):
    proc = subprocess.Popen(
        [NIXERY, "serve", "--listen", "127.0.0.1:0", "--storage", storage, "--pkgs-path", PKGS],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"nixery serve said: {line!r}")
    return proc, m.group(1)


def fetch(url, method="GET", accept=None):
    req = urllib.request.Request(url, method=method)
    req.add_header("Accept", accept or ", ".join([
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json"]))
    with urllib.request.urlopen(req, timeout=900) as resp:
        return resp.read(), resp.headers


NGINX_CONF = """
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        location = /v2/{image}/manifests/latest {{
            default_type {manifest_type};
            add_header Docker-Content-Digest {manifest_digest};
            add_header Docker-Distribution-Api-Version registry/2.0;
        }}
        location /v2/{image}/blobs/ {{
            default_type application/octet-stream;
            add_header Docker-Content-Digest {blob_digest};
            add_header Docker-Distribution-Api-Version registry/2.0;
        }}
    }}
}}
"""

GET_LUA = 'wrk.headers["Accept"] = "{accept}"\n'


def wrk(url, script, seconds):
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-s", script, url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    tscale = {"B": 1e-6, "KB": 1024 / 1e6, "MB": 1.048576, "GB": 1073.741824}[transfer.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return dict(rps=rps, p50=float(p50.group(1)) * scale,
                mbps=float(transfer.group(1)) * tscale, errors=int(errors.group(1)) if errors else 0)


def hey(url, accept, seconds):
    """HEAD load: wrk cannot (its parser waits for a body after HEAD's Content-Length)."""
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", "64", "-m", "HEAD", "-H",
                          f"Accept: {accept}", url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)) * 1e3
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
    errors = sum(int(n) for code, n in codes if not code.startswith("2"))
    return dict(rps=rps, p50=p50, mbps=0.0, errors=errors)


def bench_serve(args):
    tmp = tempfile.mkdtemp(dir=SCRATCH)
    os.chmod(tmp, 0o755)  # nginx's workers run as another user
    proc, addr = start_nixery(os.path.join(tmp, "storage"))
    nginx = None
    try:
        base = f"http://{addr}/v2/{IMAGE}"
        start = time.monotonic()
        manifest, headers = fetch(f"{base}/manifests/latest")
        log(f"serve: first pull of {IMAGE} (cold build through the server) "
            f"{time.monotonic() - start:.1f} s")
        row("serve", "cold GET manifest via nixery serve, s", time.monotonic() - start)
        mtype = headers.get("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        mdigest = headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(manifest).hexdigest())
        layers = json.loads(manifest)["layers"]
        blob = max(layers, key=lambda l: l["size"])
        blob_bytes, _ = fetch(f"{base}/blobs/{blob['digest']}", accept="*/*")
        log(f"serve: manifest {len(manifest)} B, largest blob {len(blob_bytes) / 1e6:.1f} MB")
        # nginx serves the same bytes with the same headers.
        www = os.path.join(tmp, "nginx", "www", "v2", IMAGE)
        os.makedirs(os.path.join(www, "manifests"))
        os.makedirs(os.path.join(www, "blobs"))
        os.makedirs(os.path.join(tmp, "nginx", "tmp"))
        with open(os.path.join(www, "manifests", "latest"), "wb") as f:
            f.write(manifest)
        with open(os.path.join(www, "blobs", blob["digest"]), "wb") as f:
            f.write(blob_bytes)
        port = free_port()
        conf = os.path.join(tmp, "nginx", "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=os.path.join(tmp, "nginx"), port=port, image=IMAGE,
                                      manifest_type=mtype, manifest_digest=mdigest,
                                      blob_digest=blob["digest"]))
        nginx = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"])
        time.sleep(1)
        for name, prefix in (("nginx", f"http://127.0.0.1:{port}/v2/{IMAGE}"), ("nixery", base)):
            assert fetch(f"{prefix}/manifests/latest")[0] == manifest, name
        scripts = {}
        for kind, text in (("get", GET_LUA),):
            scripts[kind] = os.path.join(tmp, f"{kind}.lua")
            with open(scripts[kind], "w") as f:
                f.write(text.format(accept=mtype))
        cases = [("manifest GET", "manifests/latest", "get", "rps", 0.7),
                 ("manifest HEAD", "manifests/latest", "head", "rps", 0.7),
                 ("blob HEAD", f"blobs/{blob['digest']}", "head", "rps", 0.7),
                 ("blob GET", f"blobs/{blob['digest']}", "get", "mbps", 0.8)]
        for case, path, script, unit, want in cases:
            got = {}
            for name, prefix in (("nginx", f"http://127.0.0.1:{port}/v2/{IMAGE}"),
                                 ("nixery", base)):
                if script == "head":
                    got[name] = hey(f"{prefix}/{path}", mtype, args.seconds)
                else:
                    got[name] = wrk(f"{prefix}/{path}", scripts[script], args.seconds)
                log(f"serve {case} {name}: {got[name]}")
            ours, theirs = got["nixery"], got["nginx"]
            if ours["errors"] or theirs["errors"]:
                row("serve", f"{case}: non-2xx responses", ours["errors"], "nginx",
                    theirs["errors"], "0", None, False)
            label = "MB/s" if unit == "mbps" else "req/s"
            ratio = ours[unit] / theirs[unit]
            row("serve", f"{case}: {label}", ours[unit], "nginx", theirs[unit], f">= {want}",
                ratio, ratio >= want)
            ratio = ours["p50"] / theirs["p50"]
            goal = "<= 1.5" if unit == "rps" else ""
            row("serve", f"{case}: p50 ms", ours["p50"], "nginx", theirs["p50"], goal, ratio,
                ratio <= 1.5 if goal else None)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        if nginx:
            nginx.send_signal(signal.SIGTERM)
            nginx.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- cold build


def bench_cold(args):
    tmp = tempfile.mkdtemp(dir=SCRATCH)
    env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
    start = time.monotonic()
    out = subprocess.run([NIXERY, "build", IMAGE, "--storage", os.path.join(tmp, "storage"),
                          "--pkgs-path", PKGS], env=env, capture_output=True, text=True)
    total = time.monotonic() - start
    shutil.rmtree(tmp, ignore_errors=True)
    if out.returncode != 0:
        row("cold build", f"nixery build {IMAGE}", "FAILED", met=False)
        log(out.stderr[-2000:])
        return
    steps = build_steps(out.stderr)
    slowest = max(steps, key=lambda s: s[1])[0] if steps else None
    for step, ms in steps:
        row("cold build", f"{IMAGE}: {step}, ms", ms, goal="slowest" if step == slowest else "")
    row("cold build", f"{IMAGE}: total (process), ms", total * 1000)


# ---------------------------------------------------------------- cold build from a binary cache

NIX_ENV = dict(os.environ, NO_COLOR="1")


def nix_out(*argv):
    """A Nix command's stdout; on failure, an error that carries what Nix said."""
    r = subprocess.run(argv, capture_output=True, text=True, env=NIX_ENV)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} exited {r.returncode}: {r.stderr.strip()[-2000:]}"
                           " (tests/bench/run.sh sets NIX_CONFIG for Nix 2.8)")
    return r.stdout


def cache_pkgs(paths):
    """A package set over the generated store paths (tests/bench/cold/pkgs.nix)."""
    pkgs = os.path.join(SCRATCH, "cold-pkgs")
    os.makedirs(pkgs, exist_ok=True)
    srcs = " ".join(json.dumps(p) for p in paths)
    with open(os.path.join(pkgs, "default.nix"), "w") as f:
        f.write(f"{{ ... }}@args: import {HERE}/cold/pkgs.nix (args // {{ srcs = [ {srcs} ]; }})\n")
    return pkgs


def make_cache(mb):
    """Build the closure, then a signed xz binary cache of it (kept across runs). The roots:
    `app`, and `cacert` and `iana-etc`, which every image gets."""
    _, paths, _, _ = make_store(mb)
    pkgs = cache_pkgs(paths)
    log(f"cache: building the closure of `app` from {len(paths)} generated store paths")
    roots = [nix_out("nix-build", pkgs, "-A", attr, "--no-out-link").split()[-1]
             for attr in ("app", "cacert", "iana-etc")]
    cache = os.path.join(SCRATCH, f"cold-cache-{mb}")
    stamp = os.path.join(cache, "app")
    sk, pk = os.path.join(cache, "sk"), os.path.join(cache, "pk")
    url = f"file://{cache}/www?compression=xz&parallel-compression=true&secret-key={sk}"
    if not (os.path.exists(stamp) and open(stamp).read() == roots[0]):
        shutil.rmtree(cache, ignore_errors=True)
        os.makedirs(cache)
        nix_out("nix-store", "--generate-binary-cache-key", "bench-1", sk, pk)
        log("cache: nix copy --to file://...?compression=xz (xz -6, once per closure)")
        nix_out("nix", "copy", "--to", url, roots[0])
        with open(stamp, "w") as f:
            f.write(roots[0])
    nix_out("nix", "copy", "--to", url, *roots[1:])  # small; a no-op once there
    infos = [open(os.path.join(cache, "www", n)).read()
             for n in os.listdir(os.path.join(cache, "www")) if n.endswith(".narinfo")]
    field = lambda k: sum(int(re.search(rf"^{k}: (\d+)", i, re.M).group(1)) for i in infos)
    stats = dict(paths=len(infos), nar=field("NarSize"), xz=field("FileSize"))
    pk = open(pk).read().strip()
    return pkgs, roots, os.path.join(cache, "www"), pk, stats


def nginx_dir(root):
    """Serve `root` with nginx on a free loopback port: (process, base URL)."""
    tmp = tempfile.mkdtemp(dir=SCRATCH)
    os.makedirs(os.path.join(tmp, "tmp"))
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{ access_log off; sendfile on; client_body_temp_path {tmp}/tmp; proxy_temp_path {tmp}/tmp;
  fastcgi_temp_path {tmp}/tmp; uwsgi_temp_path {tmp}/tmp; scgi_temp_path {tmp}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"])
    time.sleep(1)
    return proc, f"http://127.0.0.1:{port}"


def build_steps(stderr):
    """(step, ms) from the `build step` log lines of `nixery build`."""
    steps = []
    for line in stderr.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        step = re.search(r'step[=:]\s*"?([^"=]+?)"?\s+elapsed_ms', line)
        ms = re.search(r"elapsed_ms[=:]\s*(\d+)", line)
        if "build step" in line and step and ms:
            steps.append((step.group(1).strip(), int(ms.group(1))))
    return steps


def cache_run(kind, url, pkgs, roots, pk):
    """One cold fetch from empty storage: `nix copy --from` or `nixery build --binary-cache`."""
    tmp = tempfile.mkdtemp(dir=SCRATCH)
    try:
        if kind == "nix copy":
            argv = ["nix", "copy", "--from", url, "--to", f"local?root={tmp}/root", *roots,
                    "--option", "trusted-public-keys", pk]
        else:
            image = "zstd/app" if kind.endswith("zstd/") else "app"
            argv = [NIXERY, "build", image, "--storage", os.path.join(tmp, "storage"),
                    "--pkgs-path", pkgs, "--binary-cache", url, "--trusted-key", pk]
        err = os.path.join(tmp, "stderr")
        with open(err, "w") as f:
            wall, cpu, rss, _ = timed(argv, stderr=f, env=dict(NIX_ENV, RUST_LOG="info"))
        return dict(wall=wall, cpu=cpu, rss=rss, steps=build_steps(open(err).read()))
    finally:
        subprocess.run(["chmod", "-R", "u+w", tmp])
        shutil.rmtree(tmp, ignore_errors=True)


def bench_cache(args):
    mb = args.cold_mb
    pkgs, roots, www, pk, st = make_cache(mb)
    nar_mb = st["nar"] / 1e6
    log(f"cache: {st['paths']} paths, NAR {nar_mb:.0f} MB, xz {st['xz'] / 1e6:.0f} MB")
    # What neither contender can avoid: decoding the xz NARs (one core; both run several).
    nars = sorted(glob.glob(os.path.join(www, "nar", "*.nar.xz")))
    xz_wall, xz_cpu, _, _ = timed(["sh", "-c", 'for f in "$@"; do xz -dc "$f"; done >/dev/null',
                                   "xz", *nars])
    row(f"cold {nar_mb:.0f} MB", "xz -dc of every NAR (the floor of both), CPU s", xz_cpu)
    nginx, http_url = nginx_dir(www)
    try:
        for transport, url in (("file://", f"file://{www}"), ("http", http_url)):
            bench = f"cold {transport} {nar_mb:.0f} MB"
            kinds = ("nix copy", "nixery build", "nixery build zstd/")
            runs = {kind: [] for kind in kinds}
            # Interleaved, so that the other jobs' load falls on every contender alike.
            for _ in range(args.repeat_cold):
                for kind in kinds:
                    runs[kind].append(cache_run(kind, url, pkgs, roots, pk))
                    log(f"{bench} {kind}: {runs[kind][-1]}")
            got = {kind: min(r, key=lambda x: x["wall"]) for kind, r in runs.items()}
            ours, nix = got["nixery build"], got["nix copy"]
            ratio = ours["wall"] / nix["wall"]
            row(bench, "wall s (best run)", ours["wall"], "nix copy --from", nix["wall"],
                "<= 0.5", ratio, ratio <= 0.5)
            row(bench, "CPU s", ours["cpu"], "nix copy --from", nix["cpu"], "",
                ours["cpu"] / nix["cpu"])
            row(bench, "NAR MB/s", nar_mb / ours["wall"], "nix copy --from",
                nar_mb / nix["wall"])
            row(bench, "peak RSS MiB", ours["rss"], "nix copy --from", nix["rss"], "<= 256",
                None, ours["rss"] <= 256)
            zstd = got["nixery build zstd/"]
            row(bench, "zstd/ image: wall s, CPU s", f"{zstd['wall']:.1f}, {zstd['cpu']:.1f}",
                "nix copy --from", f"{nix['wall']:.1f}, {nix['cpu']:.1f}", "",
                zstd["wall"] / nix["wall"])
            total = sum(ms for _, ms in ours["steps"])
            for step, ms in ours["steps"]:
                row(bench, f"step {step}, ms", ms)
            resolve = sum(ms for s, ms in ours["steps"] if s == "resolve")
            row(bench, "Nix evaluation share (resolve / steps)", resolve / max(total, 1))
            if nar_mb >= 1000:
                row(bench, "first pull within the wait budget, s", ours["wall"], "", None,
                    "<= 25", None, ours["wall"] <= 25)
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait()


# ---------------------------------------------------------------- layering


def bench_layering(args):
    out = subprocess.run([sys.executable, os.path.join(HERE, "layering", "bench.py"),
                          "--nixery", NIXERY], check=True, capture_output=True, text=True).stdout
    log(out)
    # The summary rows: corpus, role, popularity, algorithm, x LB 1, x LB 4, mean layers.
    pattern = r"(\w+)\s+(tuned on|held out)\s+(\w+)\s+(ours [\w-]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
    for m in re.finditer(pattern, out):
        corpus, role, source, algo = m.group(1), m.group(2), m.group(3), m.group(4)
        one, fleet, mean = float(m.group(5)), float(m.group(6)), float(m.group(7))
        bench = f"layering {corpus} ({role}, {source})"
        # The goals are for closure counts; Nixery-format data is shown for comparison.
        met = (lambda ok: ok) if source == "closure" else (lambda ok: None)
        row(bench, f"{algo}: bytes / lower bound, 1 client", one, "lower bound", 1, "<= 1.02",
            one, met(one <= 1.02))
        row(bench, f"{algo}: bytes / lower bound, fleet of 4", fleet, "lower bound", 1,
            "<= 1.01", fleet, met(fleet <= 1.01))
        row(bench, f"{algo}: mean layers", mean, "", None, "<= 30", None, met(mean <= 30))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="layering,pack,serve,cold,cache")
    ap.add_argument("--cold-mb", type=int, default=1000,
                    help="closure size for the binary-cache cold build, MB")
    ap.add_argument("--repeat-cold", type=int, default=2, help="runs per cold contender (best)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per packer (median)")
    ap.add_argument("--mb", default="800,200", help="store sizes to pack, MB")
    ap.add_argument("--seconds", type=int, default=10, help="wrk duration per case")
    args = ap.parse_args()
    os.makedirs(SCRATCH, exist_ok=True)
    steps = {"layering": bench_layering, "pack": bench_pack, "serve": bench_serve,
             "cold": bench_cold, "cache": bench_cache}
    for name in args.only.split(","):
        log(f"== {name}")
        try:
            steps[name](args)
        except Exception as e:  # one failing benchmark should not hide the others
            row(name, "FAILED", str(e)[:80], met=False)
            log(f"{name} failed: {e!r}")
    print("| benchmark | metric | nixery | baseline | baseline value | ratio | goal | met |")
    print("|---|---|---|---|---|---|---|---|")
    for bench, metric, ours, bname, base, ratio, goal, met in ROWS:
        ok = "" if met is None else ("yes" if met else "**no**")
        print(f"| {bench} | {metric} | {fmt(ours)} | {bname} | {fmt(base)} | {fmt(ratio)} "
              f"| {goal} | {ok} |")
    return 0 if all(r[7] is not False for r in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
