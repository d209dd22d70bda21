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

# nixpkgs needs Nix >= 2.18 (its lib/minver.nix); Debian 12's nix-bin is 2.8. Say so before
# building anything. The rule is nixery's own (it checks again at start): a channel name, a
# URL on nixos.org or ending in /nixpkgs, a directory or file:// repository holding
# lib/minver.nix.
kind=channel value="${NIXERY_CHANNEL:-nixos-unstable}" nix_bin_dir="${NIXERY_NIX_BIN_DIR:-}"
[[ -z "${NIXERY_PKGS_REPO:-}" ]] || { kind=repo value="$NIXERY_PKGS_REPO"; }
[[ -z "${NIXERY_PKGS_PATH:-}" ]] || { kind=path value="$NIXERY_PKGS_PATH"; }
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  a="${args[i]}" next="${args[i + 1]:-}"
  case "$a" in
    --pkgs-path=*|--pkgs-repo=*|--channel=*|--nix-bin-dir=*) next="${a#*=}"; a="${a%%=*}" ;;
  esac
  case "$a" in
    --pkgs-path) kind=path value="$next" ;;
    --pkgs-repo) [[ "$kind" == path ]] || { kind=repo value="$next"; } ;;
    --channel) [[ "$kind" != channel ]] || value="$next" ;;
    --nix-bin-dir) nix_bin_dir="$next" ;;
  esac
done
names_nixpkgs() {
  [[ "$1" != file://* ]] || { [[ -f "${1#file://}/lib/minver.nix" ]]; return; }
  local rest="${1#*://}" host last
  host="${rest%%[/:]*}" host="${host##*@}"
  last="${rest%/}" last="${last##*[/:]}" last="${last%.git}"
  [[ "$host" == nixos.org || "$host" == *.nixos.org || "${last,,}" == nixpkgs ]]
}
case "$kind" in
  path) [[ -f "$value/lib/minver.nix" ]] && nixpkgs=1 || nixpkgs=0 ;;
  repo) names_nixpkgs "$value" && nixpkgs=1 || nixpkgs=0 ;;
  channel) [[ "$value" != http://* && "$value" != https://* ]] || names_nixpkgs "$value" \
             && nixpkgs=1 || nixpkgs=0 ;;
esac
instantiate="${nix_bin_dir:+$nix_bin_dir/}nix-instantiate"
version="$("$instantiate" --version 2>/dev/null | awk '{print $NF}')" || true
if [[ "$nixpkgs" == 1 ]] && ! printf '2.18\n%s\n' "${version:-0}" | sort -V -C; then
  cat >&2 <<EOF2
ERROR: the package source ($kind ${value}) is nixpkgs, which needs Nix >= 2.18, but
$instantiate is Nix ${version:-(not found)}. Debian 12's nix-bin is 2.8. Get Debian 13's:
    sudo scripts/nix-rootfs.sh /opt/nix-trixie
and add --nix-bin-dir /opt/nix-trixie/bin (see README.md, "Which Nix").
EOF2
  exit 1
fi

echo "==> building nixery (release)" >&2
cargo build --release --locked -p nixery-cli
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/nixery" serve "$@"
