#!/usr/bin/env bash
# Issue 13's "done when": a Dockerfile in the shape `docker init` writes for Go (a build stage
# FROM Debian with golang-go from apt, cache mounts for the module and build caches, bind
# mounts of go.mod and go.sum and of the source, a final scratch stage) builds with tare and
# with BuildKit (the reference BuildKit 0.25), and both give the same files.
#
#   bash scripts/go-init-e2e.sh        # needs the network (apt-get), debootstrap, root
#
# The Debian base is `debootstrap --variant=minbase bookworm`, cached as a tar under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${GO_E2E_WORK:-/tmp/tare-go-e2e}"
BASE_TAR="${DEBIAN_TAR:-/tmp/tare-debian-bookworm-minbase.tar}"
rm -rf "$WORK"; mkdir -p "$WORK/ctx"
trap 'rm -rf "$WORK"' EXIT

if [ ! -s "$BASE_TAR" ]; then
  rootfs="$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$rootfs"
fi

cargo build --quiet -p tare
TARE="${CARGO_TARGET_DIR:-$PWD/target}/debug/tare"
export TARE_ROOT="$WORK/store"
"$TARE" import "$BASE_TAR" debian-go-base:bookworm >/dev/null
eval "$(bash ../shared/tools/modern-buildkit.sh env)"
$MODERN_DOCKER import "$BASE_TAR" debian-go-base:bookworm >/dev/null

cat >"$WORK/ctx/go.mod" <<'EOF'
module example.com/server

go 1.19
EOF
: >"$WORK/ctx/go.sum"
cat >"$WORK/ctx/main.go" <<'EOF'
package main

import (
	"fmt"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	_ = http.ListenAndServe(":8080", nil)
}
EOF
cat >"$WORK/ctx/Dockerfile" <<'EOF'
FROM debian-go-base:bookworm AS build
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean && apt-get update \
    && apt-get install -y --no-install-recommends golang-go ca-certificates
ENV GOPATH=/go GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN=local
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod/ \
    --mount=type=bind,source=go.sum,target=go.sum \
    --mount=type=bind,source=go.mod,target=go.mod \
    go mod download -x
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod/ \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    CGO_ENABLED=0 GOARCH=$TARGETARCH go build -o /bin/server .

FROM scratch AS final
COPY --from=build /bin/server /bin/
EXPOSE 8080
ENTRYPOINT [ "/bin/server" ]
EOF

echo "tare build"
time "$TARE" build --progress plain -t go-e2e:tare "$WORK/ctx" >"$WORK/tare.log" 2>&1 || { tail -30 "$WORK/tare.log"; exit 1; }
echo "BuildKit build"
time $MODERN_DOCKER build --network host -q -t go-e2e:buildkit "$WORK/ctx" >"$WORK/bk.log" 2>&1 || { tail -30 "$WORK/bk.log"; exit 1; }

# The files of each final image: path, mode, owner, size and content hash.
listing() { # tar file
  python3 - "$1" <<'PY'
import hashlib, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in sorted(t.getmembers(), key=lambda m: m.name):
        name = m.name[2:] if m.name.startswith("./") else m.name.lstrip("/")
        if not name:
            continue
        h = hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else m.linkname
        print(name, oct(m.mode), m.uid, m.gid, m.size, h)
PY
}
"$TARE" export go-e2e:tare -o "$WORK/tare.tar"
id=$($MODERN_DOCKER create go-e2e:buildkit)
$MODERN_DOCKER export "$id" -o "$WORK/bk-all.tar"; $MODERN_DOCKER rm "$id" >/dev/null
# docker export adds the container's own files (/.dockerenv, /dev, /etc, /proc, /sys).
listing "$WORK/tare.tar" >"$WORK/tare.list"
listing "$WORK/bk-all.tar" | grep -v -E '^(\.dockerenv|dev|etc|proc|sys)( |/)' >"$WORK/bk.list"
if diff -u "$WORK/bk.list" "$WORK/tare.list"; then
  echo "same files:"; cat "$WORK/tare.list"
else
  echo "the images differ"; exit 1
fi
