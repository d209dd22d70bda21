#!/usr/bin/env bash
# A newer Nix for a machine whose own is too old for nixpkgs (Debian 12's nix-bin is 2.8;
# nixpkgs needs >= 2.18): Debian 13's nix-bin unpacked into DIR/rootfs with mmdebstrap, and
# DIR/bin with nix, nix-build, nix-instantiate and nix-store wrappers that run it with its
# own program loader and libraries. Point nixery at them:
#
#   scripts/nix-rootfs.sh /opt/nix-trixie
#   nixery serve --nix-bin-dir /opt/nix-trixie/bin --channel nixos-unstable ...
#
# Nothing runs inside the root filesystem and nothing outside DIR changes. The wrapped Nix uses
# the machine's /nix and /etc/nix/nix.conf like any Nix: it upgrades the store database's
# schema, after which Nix 2.8 can no longer open it (README.md, "Which Nix").
set -euo pipefail

usage() {
  echo "Usage: scripts/nix-rootfs.sh [--suite SUITE] [--mirror URL] DIR   (needs root and mmdebstrap)" >&2
}

suite="trixie"
mirror="http://deb.debian.org/debian"
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite="${2:?--suite needs a value}"; shift 2 ;;
    --mirror) mirror="${2:?--mirror needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage; exit 2 ;;
    *) dir="$1"; shift ;;
  esac
done
[ -n "$dir" ] || { usage; exit 2; }
case "$(uname -m)" in
  x86_64) triplet=x86_64-linux-gnu; loader=ld-linux-x86-64.so.2 ;;
  aarch64) triplet=aarch64-linux-gnu; loader=ld-linux-aarch64.so.1 ;;
  *) echo "nix-rootfs.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
command -v mmdebstrap >/dev/null || { echo "nix-rootfs.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
root="$dir/rootfs"
# Unpack only (no maintainer scripts), so any host can do it; start from an empty directory.
rm -rf "$root.new"
mmdebstrap --quiet --variant=extract --include=nix-bin,ca-certificates "$suite" "$root.new" "$mirror"
rm -rf "$root" && mv "$root.new" "$root"

lib="$root/usr/lib/$triplet"
[ -x "$lib/$loader" ] && [ -x "$root/usr/bin/nix" ] || { echo "nix-rootfs.sh: nix or $loader missing in $root" >&2; exit 1; }
mkdir -p "$dir/bin"
for program in nix nix-build nix-instantiate nix-store; do
  # Nix is one program that acts by the name it is called with (--argv0). Its default build
  # hook would run the loader itself (/proc/self/exe) as `__build-remote`: no remote builders
  # here, so none (an operator's NIX_CONFIG, read later, can still set one).
  cat >"$dir/bin/$program" <<WRAPPER
#!/bin/sh
NIX_CONFIG="build-hook =\${NIX_CONFIG:+
\$NIX_CONFIG}" exec "$lib/$loader" --library-path "$lib" --argv0 $program "$root/usr/bin/nix" "\$@"
WRAPPER
  chmod 0755 "$dir/bin/$program"
done
version="$("$dir/bin/nix-instantiate" --version)"
echo "nix-rootfs.sh: $version in $dir/bin" >&2
echo "$dir/bin"
