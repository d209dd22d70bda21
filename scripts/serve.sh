#!/usr/bin/env bash
# Set up and run the registry on one machine (Debian 12): installs Nix and the
# static binaries the offline package set uses, builds `nixery` in release
# mode, then runs `nixery serve` with the arguments given.
#
#   scripts/serve.sh --pkgs-path nix/pkgs        # offline package set
#   scripts/serve.sh --channel nixos-unstable    # nixpkgs (needs internet)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PACKAGES=(nix-bin busybox-static bash-static)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "==> installing ${missing[*]}" >&2
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${PACKAGES[@]}"
fi

# Debian's Nix as root without build users or a sandbox. Keep an operator's own setting.
# The offline package set in nix/ is never in a binary cache: don't ask one.
conf=$'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command'
for arg in "$@"; do
  [[ "$arg" == "nix/pkgs" || "$arg" == "$ROOT/nix/pkgs" || "$arg" == "--pkgs-path=nix/pkgs" ]] && conf+=$'\nsubstituters ='
done
export NIX_CONFIG="${NIX_CONFIG:-$conf}"

echo "==> building nixery (release)" >&2
cargo build --release --locked -p nixery-cli
exec "$ROOT/target/release/nixery" serve "$@"
