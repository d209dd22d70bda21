#!/usr/bin/env bash
# All of Nixery's performance benchmarks (layering, packing, serving, cold build, cold build from
# a binary cache vs `nix copy --from`) in one run,
# ending with one table of figures and ratios against the baselines. Not part of the test suite.
#
#   tests/bench/run.sh [bench.py options]     e.g. --only pack,serve --repeat 1
#
# Installs what it needs (nginx, wrk, hey, pigz, zstd) with apt-get when missing, builds the release
# binary, and runs the heavy parts under `nice`. Scratch data goes to target/bench/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
missing=()
for tool in nginx wrk hey pigz zstd time; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# nix calls (cold build, serving) need no sandbox or build users in a container.
export NIX_CONFIG="${NIX_CONFIG:-$'sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command'}"
cargo build --release -p nixery-cli
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(. /etc/os-release && echo "$PRETTY_NAME")"
nice python3 tests/bench/bench.py "$@"
