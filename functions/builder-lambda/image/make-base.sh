#!/usr/bin/env bash
# Make the base image of the builder Lambda: a minimal Debian root filesystem holding Nix (>= 2.18,
# from Debian's nix-bin) and the CA bundle, made from Debian packages with mmdebstrap and loaded
# into the Docker Engine. No registry is involved and nothing runs inside the root filesystem
# (mmdebstrap's "extract" variant only unpacks packages), so any architecture can be made on
# any host.
#
# The image has no shell and no package manager; functions/builder-lambda/Dockerfile adds the
# builder binary and nix.conf on top (scripts/builder-image.sh runs both steps).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: functions/builder-lambda/image/make-base.sh [options]

Make the builder Lambda's base image (Debian's nix-bin and ca-certificates, nothing else that
runs) with mmdebstrap and load it into Docker.

Options:
  --arch x86_64|arm64   architecture of the image (default: the host's)
  --tag NAME:TAG        image tag (default: nixery-builder-base:<suite>-<arch>)
  --suite SUITE         Debian suite providing nix-bin >= 2.18 (default: trixie)
  --mirror URL          Debian mirror (default: http://deb.debian.org/debian)
  --keep DIR            also keep the root filesystem in DIR (for inspection)
  -h, --help            this help

Needs root (or sudo) for mmdebstrap; installs mmdebstrap with apt-get if it is missing.
File times are clamped to SOURCE_DATE_EPOCH (default: the newest file time in the packages),
so the same packages give the same layer digest. KEEP_WORK=1 keeps the work directory
(/var/tmp/nixery-base.*) for debugging.
EOF
}

arch=""
tag=""
suite="trixie"
mirror="http://deb.debian.org/debian"
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --suite) suite="${2:?--suite needs a value}"; shift 2 ;;
    --mirror) mirror="${2:?--mirror needs a value}"; shift 2 ;;
    --keep) keep="${2:?--keep needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "make-base.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ -n "$arch" ] || arch="$(uname -m)"
case "$arch" in
  x86_64|amd64) arch=x86_64; debarch=amd64; goarch=amd64; variant=""; triplet=x86_64-linux-gnu
    loader=ld-linux-x86-64.so.2; loaderdir=lib64 ;;
  arm64|aarch64) arch=arm64; debarch=arm64; goarch=arm64; variant="v8"; triplet=aarch64-linux-gnu
    loader=ld-linux-aarch64.so.1; loaderdir=lib ;;
  *) echo "make-base.sh: unsupported architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
esac
[ -n "$tag" ] || tag="nixery-builder-base:${suite}-${arch}"

if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env=SOURCE_DATE_EPOCH,KEEP_WORK "$0" --arch "$arch" --tag "$tag" --suite "$suite" \
    --mirror "$mirror" ${keep:+--keep "$keep"}
fi
command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap; }
for tool in docker sha256sum tar; do
  command -v "$tool" >/dev/null || { echo "make-base.sh: $tool is missing" >&2; exit 1; }
done

work="$(mktemp -d /var/tmp/nixery-base.XXXXXX)"
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
root="$work/rootfs"

# The extract variant unpacks nix-bin, ca-certificates and their dependencies and runs no
# maintainer script (it also ignores --dpkgopt path-exclude and runs no customize hook).
echo "make-base.sh: mmdebstrap $suite ($debarch) from $mirror" >&2
mmdebstrap --variant=extract --architectures="$debarch" --include=nix-bin,ca-certificates \
  "$suite" "$root" "$mirror" >"$work/mmdebstrap.log" 2>&1 \
  || { cat "$work/mmdebstrap.log" >&2; exit 1; }

# Add what the maintainer scripts and a merged-/usr system would have provided: the /bin, /lib...
# links, the program loader at the path in the ELF headers, the CA bundle that
# update-ca-certificates would make (the AWS SDK and Nix read it).
(
  cd "$root"
  for d in bin sbin lib; do [ -e "$d" ] || ln -s "usr/$d" "$d"; done
  if [ "$loaderdir" = lib64 ]; then
    mkdir -p usr/lib64
    [ -e "usr/lib64/$loader" ] || ln -s "../lib/$triplet/$loader" "usr/lib64/$loader"
    [ -e lib64 ] || ln -s usr/lib64 lib64
  else
    [ -e "usr/lib/$loader" ] || ln -s "$triplet/$loader" "usr/lib/$loader"
  fi
  mkdir -p etc/ssl/certs
  find usr/share/ca-certificates -name '*.crt' | LC_ALL=C sort | xargs cat \
    > etc/ssl/certs/ca-certificates.crt
  [ -s etc/ssl/certs/ca-certificates.crt ]

  # Drop what nothing at run time uses: Perl (Debian's nix-bin depends on it for scripts the
  # image never runs; `nix` does not link it), documentation but the copyright files, manual
  # pages, translations, apt and debconf state, device nodes (the runtime provides /dev),
  # set-uid bits, and the build host's resolv.conf and hostname.
  find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
  find usr/share/doc -mindepth 1 -type d -empty -delete
  rm -rf usr/share/man usr/share/info usr/share/locale usr/share/lintian \
    usr/share/bash-completion usr/share/zsh usr/share/fish \
    usr/share/perl usr/share/perl5 "usr/lib/$triplet/perl" "usr/lib/$triplet/perl5" \
    "usr/lib/$triplet/perl-base" "usr/lib/$triplet"/libperl.so* usr/bin/perl* usr/bin/cpan* \
    etc/perl var/cache/apt var/cache/debconf var/lib/apt var/log/apt etc/apt \
    etc/resolv.conf etc/hostname
  find dev -mindepth 1 -delete
  find . -xdev -type f -perm /6000 -exec chmod ug-s {} +
  # /tmp: Lambda mounts its tmpfs there; the image's own must be world-writable and sticky for
  # runs under other engines. /nix: logical store directory, empty (the store is under /tmp).
  mkdir -p tmp nix/store && chmod 1777 tmp && chmod 0755 nix nix/store
)

# The files must run: nix and its libraries, found through the loader named in the ELF header.
for f in usr/bin/nix "$loaderdir/$loader" etc/ssl/certs/ca-certificates.crt; do
  [ -e "$root/$f" ] || { echo "make-base.sh: $f missing in the root filesystem" >&2; exit 1; }
done

# A docker-archive (what `docker save` writes) with one layer, so that the image config can say
# which architecture it is for (`docker import --platform` needs an experimental daemon).
# File times are clamped to the newest file time in the packages: the same packages give the
# same layer digest and image id.
epoch="${SOURCE_DATE_EPOCH:-$(find "$root/usr" -type f -printf '%T@\n' | sort -n | tail -n 1 | cut -d. -f1)}"
out="$work/archive"
mkdir -p "$out"
tar -C "$root" --sort=name --numeric-owner --mtime="@$epoch" --clamp-mtime \
  --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
  -cf "$out/layer.tar" .
diff_id="$(sha256sum "$out/layer.tar" | cut -d' ' -f1)"
mkdir -p "$out/$diff_id"
mv "$out/layer.tar" "$out/$diff_id/layer.tar"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
variant_json=""
[ -z "$variant" ] || variant_json="\"variant\":\"$variant\","
cat >"$out/config.json" <<EOF
{"architecture":"$goarch",$variant_json"os":"linux","created":"$created",
 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
           "Labels":{"org.opencontainers.image.description":"nixery builder base: Debian $suite nix-bin, ca-certificates (mmdebstrap extract)"}},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"$created","created_by":"functions/builder-lambda/image/make-base.sh --suite $suite --arch $arch"}]}
EOF
config_id="$(sha256sum "$out/config.json" | cut -d' ' -f1)"
mv "$out/config.json" "$out/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
  "$config_id" "$tag" "$diff_id" >"$out/manifest.json"
tar -C "$out" -cf - . | docker load >&2

if [ -n "$keep" ]; then
  rm -rf "$keep" && mkdir -p "$(dirname "$keep")" && mv "$root" "$keep"
fi
echo "make-base.sh: loaded $tag (image $config_id, layer sha256:$diff_id, ${arch})" >&2
echo "$tag"
