#!/usr/bin/env bash
# The test command: install what the tests need (Debian 12), build, lint, run the whole suite.
# Runnable from any directory. Fails loudly if a tool is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

# --- system packages -------------------------------------------------------------------------
APT_PACKAGES=(nix-bin containerd runc skopeo umoci podman busybox-static bash-static mmdebstrap unzip)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  log "installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${APT_PACKAGES[@]}"
else
  log "system packages already installed"
fi

# Debian's nix-bin as root: no sandbox, no build users, offline.
export NIX_CONFIG=$'sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command'
export NO_COLOR=1

# --- tools -----------------------------------------------------------------------------------
for tool in cargo nix-build nix-store nix-instantiate containerd ctr runc skopeo umoci podman docker busybox unzip; do
  command -v "$tool" >/dev/null || die "required tool '$tool' not found in PATH"
done
[[ -x /bin/bash-static || -x /usr/bin/bash-static ]] || die "bash-static not found"
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
  cargo nextest --version >/dev/null 2>&1 || die "cargo-nextest still not available"
fi

# S3- and DynamoDB-compatible servers for the AWS adapter tests.
if ! command -v moto_server >/dev/null || ! python3 -c 'import flask, flask_cors' 2>/dev/null; then
  log "installing moto[server]"
  python3 -m pip install --quiet 'moto[server]>=5,<6'
  command -v pyenv >/dev/null && pyenv rehash || true
fi
command -v moto_server >/dev/null || die "moto_server not found after pip install"
if ! command -v s3s-fs >/dev/null; then
  log "installing s3s-fs (about 4 minutes)"
  cargo install --locked s3s-fs --version 0.14.1 --features binary
fi
command -v s3s-fs >/dev/null || die "s3s-fs not found after cargo install (is ~/.cargo/bin on PATH?)"

# cargo-lambda (PyPI) runs the Lambda binaries behind its runtime and Invoke API emulator.
if ! cargo lambda --version >/dev/null 2>&1; then
  log "installing cargo-lambda"
  python3 -m pip install --quiet 'cargo-lambda>=1.9,<2'
  command -v pyenv >/dev/null && pyenv rehash || true
fi
cargo lambda --version >/dev/null 2>&1 || die "cargo-lambda not found after pip install (is pip's bin directory on PATH?)"

# Docker: the builder image is built and run as Lambda runs it, and docker is a client.
command -v docker >/dev/null || die "docker not found: the tests need a running Docker Engine"
docker info >/dev/null 2>&1 || die "docker cannot reach a Docker Engine (docker info failed)"
command -v unshare >/dev/null || die "unshare (util-linux) not found"
command -v strip >/dev/null || die "strip (binutils) not found: the builder image test strips the debug binary"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

# The Lambda Runtime Interface Emulator ships inside the aws-sam-cli wheel (PyPI).
RIE="$TARGET/lambda-rie/aws-lambda-rie-x86_64"
if [[ ! -x "$RIE" ]]; then
  log "fetching the Lambda Runtime Interface Emulator (aws-sam-cli wheel)"
  rm -rf "$TARGET/lambda-rie/wheel" && mkdir -p "$TARGET/lambda-rie/wheel"
  python3 -m pip download --quiet --no-deps --only-binary=:all: aws-sam-cli -d "$TARGET/lambda-rie/wheel"
  python3 - "$TARGET/lambda-rie" <<'PY'
import glob, os, sys, zipfile
out = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(out, "wheel", "aws_sam_cli-*.whl"))[0])
data = wheel.read("samcli/local/rapid/aws-lambda-rie-x86_64")
path = os.path.join(out, "aws-lambda-rie-x86_64")
with open(path + ".new", "wb") as f:
    f.write(data)
os.chmod(path + ".new", 0o755)
os.replace(path + ".new", path)
PY
fi
[[ -x "$RIE" ]] || die "the Runtime Interface Emulator is missing at $RIE"
export NIXERY_LAMBDA_RIE="$RIE"

# A Nix >= 2.18 for the local path's modern-Nix tests: Debian 13's, in a root filesystem.
if [[ ! -x "$TARGET/nix-trixie/bin/nix-instantiate" ]]; then
  log "unpacking Debian 13's Nix into $TARGET/nix-trixie (mmdebstrap)"
  as_root=()
  [[ $(id -u) -eq 0 ]] || as_root=(sudo)
  "${as_root[@]}" "$ROOT/scripts/nix-rootfs.sh" "$TARGET/nix-trixie" >/dev/null
fi
export NIXERY_TEST_NIX_BIN_DIR="$TARGET/nix-trixie/bin"
"$NIXERY_TEST_NIX_BIN_DIR/nix-instantiate" --version >/dev/null || die "the modern Nix in $NIXERY_TEST_NIX_BIN_DIR does not run"

# --- build, lint, test -----------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all --check

log "cargo build --workspace --locked"
cargo build --workspace --locked

log "architecture: nixery-core has no AWS or Lambda dependency"
if leaks=$(cargo tree --locked -p nixery-core -e normal,build --prefix none --format '{p}' | grep -Ei '^(aws[-_]|lambda)'); then
  die "nixery-core must not depend on AWS or Lambda crates, found: $(sort -u <<<"$leaks" | tr '\n' ' ')"
fi

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --locked --all-targets -- -D warnings

export NIXERY_BIN="${NIXERY_BIN:-$TARGET/debug/nixery}"
[[ -x "$NIXERY_BIN" ]] || die "nixery binary not found at $NIXERY_BIN after the build"

log "infra checks: python-hcl2, checkov, hadolint, Terraform/Rust agreement"
"$ROOT/infra/check.sh"

# The zip the Terraform deploys. registry_lambda's test runs this same command (then a no-op)
# and starts the zip under the RIE; a cold release build is 6 min on an idle 2-core machine and
# went past the test's 15-min limit with the other tests sharing the cores, so it is built here.
log "cargo lambda build --release --output-format zip -p nixery-registry-lambda"
cargo lambda build --release --output-format zip -p nixery-registry-lambda \
  --lambda-dir "$TARGET/lambda-zip"

log "cargo nextest run --workspace --locked --no-fail-fast"
status=0
cargo nextest run --workspace --locked --no-fail-fast "$@" || status=$?

# The local path again with Debian 13's Nix (2.26) on a store of its own: every `nixery serve`
# of these tests resolves, realises and reads closures with it (about a minute).
log "local end-to-end tests with the modern Nix (NIXERY_E2E_MODERN_NIX)"
NIXERY_E2E_MODERN_NIX=1 cargo nextest run --locked --no-fail-fast -p nixery-e2e \
  -E 'binary(e2e_containerd) | binary(e2e_docker) | binary(pinned_sources) | binary(restart)' \
  || status=$?
exit "$status"
