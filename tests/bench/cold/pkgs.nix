# The cold-build benchmark's package set: big store paths of real files with references,
# like a real closure, and cheap to evaluate (no source is hashed at evaluation time).
#
#   import ./pkgs.nix { system; srcs = [ "/abs/dir-1" ... ]; }
#
# `srcs` are directories of files (tests/bench/pack/make_store.py makes them). Package `part-N`
# copies `srcs[N]` and refers to part-(N-1) and part-(N/2), so the closure is a DAG rather
# than a chain; `app` refers to the last part, so `app`'s closure holds every part. Sources
# are plain strings read by the builder (the benchmark runs Nix without a sandbox), so
# evaluation reads no file contents, as with nixpkgs' fetchurl sources.
{ system ? builtins.currentSystem, srcs, hostBin ? /usr/bin, ... }:

let
  bb = builtins.path {
    path = hostBin;
    name = "busybox-static";
    filter = p: t: baseNameOf p == "busybox";
  };
  mk = name: script: deps: derivation {
    inherit name system;
    builder = "${bb}/busybox";
    deps = map toString deps;
    args = [ "sh" "-e" "-c" ''
      ${bb}/busybox mkdir -p "$TMPDIR/.bb"
      ${bb}/busybox --install -s "$TMPDIR/.bb"
      export PATH="$TMPDIR/.bb"
      mkdir -p "$out/nix-support"
      ${script}
      # The references Nix finds when it scans the output.
      echo "$deps" > "$out/nix-support/depends"
    '' ];
  };
  n = builtins.length srcs;
  part = i: mk "part-${toString i}" ''cp -r ${builtins.elemAt srcs i}/. "$out/"''
    (if i == 0 then [ ] else [ (at (i - 1)) (at (i / 2)) ]);
  at = builtins.elemAt parts;
  parts = builtins.genList part n;
in
{
  # Every image gets these two; here they are tiny stand-ins.
  cacert = mk "cacert" ''
    mkdir -p "$out/etc/ssl/certs"
    echo "no certificates in this benchmark" > "$out/etc/ssl/certs/ca-bundle.crt"
  '' [ ];
  iana-etc = mk "iana-etc" ''
    mkdir -p "$out/etc"
    echo "tcpmux 1/tcp" > "$out/etc/services"
  '' [ ];
  app = mk "app" ''
    mkdir -p "$out/bin"
    echo '#!/bin/sh' > "$out/bin/app"
    chmod +x "$out/bin/app"
  '' [ (at (n - 1)) ];
}
