#!/usr/bin/env bash
# The seed demo, tare's main job, from a fresh Debian 12 machine:
#   1. builds tare;
#   2. makes a Debian base image (pulled when a registry is reachable, otherwise debootstrap'd
#      once into a cache and brought in with `tare import`);
#   3. builds the seed's single-stage and multi-stage images;
#   4. shows their sizes side by side (`tare images`, `tare history`) and the waste tare finds;
#   5. squashes the multi-stage image and slims it (`tare slim`: a traced run keeps only what
#      `hello` opens, verified by running it again on the result);
#   6. shows the four sizes side by side and runs the slim image, which prints the greeting.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

export TARE_ROOT="${TARE_ROOT:-$PWD/.cache/demo-store}"
CACHE="${TARE_DEMO_CACHE:-/var/cache/tare-demo}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

need=()
for p in debootstrap busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

log "building tare (release)"
cargo build --release --quiet -p tare
TARE="${CARGO_TARGET_DIR:-$PWD/target}/release/tare"

log "base image debian:bookworm"
if "$TARE" images --format json | grep -q '"debian"'; then
  echo "already in the store at $TARE_ROOT"
elif "$TARE" --help | grep -q '^  pull' && "$TARE" pull debian:bookworm 2>/dev/null; then
  echo "pulled from a registry"
else
  rootfs_tar="$CACHE/bookworm-minbase.tar"
  if [ ! -s "$rootfs_tar" ]; then
    echo "no registry reachable: debootstrap --variant=minbase bookworm (about 35 s, cached in $CACHE)"
    mkdir -p "$CACHE"
    rm -rf "$CACHE/bookworm.tmp"
    debootstrap --variant=minbase bookworm "$CACHE/bookworm.tmp" "$MIRROR" >"$CACHE/debootstrap.log"
    tar --numeric-owner --xattrs -C "$CACHE/bookworm.tmp" -cf "$rootfs_tar.tmp" .
    mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$CACHE/bookworm.tmp"
  fi
  "$TARE" import --change 'CMD ["bash"]' "$rootfs_tar" debian:bookworm
fi

cd examples/seed
log "tare build: the single-stage Dockerfile"
"$TARE" build --progress plain -f Dockerfile.single -t seed:single .
log "tare build: the multi-stage Dockerfile"
"$TARE" build --progress plain -f Dockerfile.multi -t seed:multi .
log "tare build: RUN rm in its own layer"
"$TARE" build --progress plain -f Dockerfile.waste -t seed:waste .

log "tare images"
"$TARE" images
log "tare history seed:single"
"$TARE" history seed:single
log "tare history seed:multi"
"$TARE" history seed:multi
log "tare history seed:waste (the 10 MB that RUN rm did not free)"
"$TARE" history seed:waste
if "$TARE" --help | grep -q '^  analyze'; then
  log "tare analyze seed:waste"
  "$TARE" analyze seed:waste || true
fi

log "tare run --rm seed:multi"
"$TARE" run --rm seed:multi

log "tare squash seed:multi -t seed:squashed"
"$TARE" squash --all seed:multi -t seed:squashed
log "tare slim seed:multi -t seed:slim (traces hello, keeps what it opens, verifies)"
"$TARE" slim seed:multi -t seed:slim --report "${TARE_ROOT}/seed-slim-report.html"

log "the four images side by side: single-stage, multi-stage, squashed, slim"
for ref in seed:single seed:multi seed:squashed seed:slim; do
  "$TARE" images --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | awk -v r="$ref" -F'\t' '$1 == r'
done
log "tare run --rm seed:slim"
"$TARE" run --rm seed:slim
