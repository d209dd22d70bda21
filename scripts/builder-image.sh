#!/usr/bin/env bash
# Build the builder Lambda's container image: the same recipe for production (ECR) and tests.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/builder-image.sh [options]

Build the builder Lambda's container image: make the base image from Debian packages
(functions/builder-lambda/image/make-base.sh: Debian trixie's nix-bin and ca-certificates, no
shell), then build functions/builder-lambda/Dockerfile on it with the builder binary and
functions/builder-lambda/image/nix.conf. No registry is contacted (unless --push).

Options:
  --binary PATH        the nixery-builder-lambda binary (glibc, Linux, for --arch). Default:
                       build it in release mode: `cargo build --release --locked -p
                       nixery-builder-lambda` on a host of the same architecture, else
                       `cargo lambda build --release --arm64|--x86-64 -p nixery-builder-lambda`
  --arch x86_64|arm64  image architecture (default: the host's; the AWS module uses arm64)
  --tag NAME:TAG       image tag (default: nixery-builder-lambda:<arch>)
  --base-tag NAME:TAG  base image tag (default: nixery-builder-base:<suite>-<arch>)
  --rebuild-base       make the base image again even if --base-tag exists
  --suite SUITE        Debian suite of the base (default: trixie)
  --mirror URL         Debian mirror for the base (default: http://deb.debian.org/debian)
  --no-check           skip the smoke test (run only when --arch is the host's)
  --push               docker push the tag afterwards (a single-platform image manifest)
  -h, --help           this help

Prints the image tag on its last line. Example for AWS:
  scripts/builder-image.sh --arch arm64 --tag "$REPO:v1" --push
EOF
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary=""
arch=""
tag=""
base_tag=""
rebuild_base=0
suite="trixie"
mirror="http://deb.debian.org/debian"
check=1
push=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --base-tag) base_tag="${2:?--base-tag needs a value}"; shift 2 ;;
    --rebuild-base) rebuild_base=1; shift ;;
    --suite) suite="${2:?--suite needs a value}"; shift 2 ;;
    --mirror) mirror="${2:?--mirror needs a value}"; shift 2 ;;
    --no-check) check=0; shift ;;
    --push) push=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "builder-image.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

host_arch="$(uname -m)"
case "$host_arch" in aarch64) host_arch=arm64 ;; esac
[ -n "$arch" ] || arch="$host_arch"
case "$arch" in
  x86_64|amd64) arch=x86_64; elf_machine=62 ;;
  arm64|aarch64) arch=arm64; elf_machine=183 ;;
  *) echo "builder-image.sh: unsupported architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
esac
goarch="$([ "$arch" = x86_64 ] && echo amd64 || echo arm64)"
[ -n "$tag" ] || tag="nixery-builder-lambda:$arch"
[ -n "$base_tag" ] || base_tag="nixery-builder-base:${suite}-${arch}"

# 1. The binary.
if [ -z "$binary" ]; then
  if [ "$arch" = "$host_arch" ]; then
    (cd "$repo" && cargo build --release --locked -p nixery-builder-lambda >&2)
    binary="$repo/target/release/nixery-builder-lambda"
  else
    command -v cargo-lambda >/dev/null \
      || { echo "builder-image.sh: cross-building needs cargo-lambda (pip install cargo-lambda), or pass --binary" >&2; exit 1; }
    (cd "$repo" && cargo lambda build --release "--${arch/x86_64/x86-64}" -p nixery-builder-lambda >&2)
    binary="$repo/target/lambda/nixery-builder-lambda/bootstrap"
  fi
fi
[ -f "$binary" ] || { echo "builder-image.sh: no binary at $binary" >&2; exit 1; }
# ELF magic and e_machine (62 = x86-64, 183 = AArch64) must fit --arch.
magic="$(od -An -tx1 -N4 "$binary" | tr -d ' \n')"
machine="$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' \n')"
if [ "$magic" != 7f454c46 ] || [ "$machine" != "$elf_machine" ]; then
  echo "builder-image.sh: $binary is not a Linux $arch executable (ELF machine ${machine:-?})" >&2
  exit 1
fi

# 2. The base image, made from Debian packages (kept between runs; --rebuild-base to refresh).
if [ "$rebuild_base" = 1 ] || ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  "$repo/functions/builder-lambda/image/make-base.sh" --arch "$arch" --tag "$base_tag" \
    --suite "$suite" --mirror "$mirror" >/dev/null
fi

# 3. The image. A small build context (the repository's would hold target/): binary + nix.conf.
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
install -m 0755 "$binary" "$ctx/nixery-builder-lambda"
install -m 0644 "$repo/functions/builder-lambda/image/nix.conf" "$ctx/nix.conf"
# The plain builder: BuildKit would try to resolve the base image in a registry.
DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build --quiet \
  --build-arg "BASE_IMAGE=$base_tag" -f "$repo/functions/builder-lambda/Dockerfile" \
  -t "$tag" "$ctx" >&2
built_arch="$(docker image inspect -f '{{.Architecture}}' "$tag")"
if [ "$built_arch" != "$goarch" ]; then
  echo "builder-image.sh: $tag says architecture $built_arch, expected $goarch" >&2
  exit 1
fi

# 4. Smoke test, as Lambda runs it: read-only root, unknown uid, no HOME passed, only /tmp.
if [ "$check" = 1 ] && [ "$arch" = "$host_arch" ]; then
  lambda_like=(--rm --read-only --tmpfs "/tmp:rw,mode=1777,size=512m" --user 4242:4242
    --cap-drop ALL --security-opt no-new-privileges --network none)
  version="$(docker run "${lambda_like[@]}" --entrypoint /usr/bin/nix "$tag" --version)"
  sum="$(docker run "${lambda_like[@]}" --entrypoint /usr/bin/nix-instantiate "$tag" \
    --eval -E '1 + 1')"
  [ "$sum" = 2 ] || { echo "builder-image.sh: nix-instantiate in $tag printed '$sum'" >&2; exit 1; }
  echo "builder-image.sh: $tag: $version, evaluates as uid 4242 on a read-only root" >&2
fi

size="$(docker image inspect -f '{{.Size}}' "$tag")"
echo "builder-image.sh: built $tag ($arch, $((size / 1000000)) MB, base $base_tag)" >&2
if [ "$push" = 1 ]; then
  docker push "$tag" >&2
fi
echo "$tag"
