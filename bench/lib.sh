# Set-up shared by the bench scripts: `. "$(dirname "$0")/lib.sh"` at the top of each.
# Defines functions only (and BENCH_REPO); nothing runs when it is sourced.

# The repository root (this file's parent directory).
BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# bench_tare: sets TARE to the binary to measure: $TARE_BIN when given (nothing is built),
# else this tree's release binary, built first.
bench_tare() {
  if [ -n "${TARE_BIN:-}" ]; then
    TARE="$TARE_BIN"
  else
    cargo build --release --quiet -p tare --manifest-path "$BENCH_REPO/Cargo.toml"
    TARE="${CARGO_TARGET_DIR:-$BENCH_REPO/target}/release/tare"
  fi
}

# bench_docker: the old dockerd the tests use (scripts/test.sh starts it) as $DOCKER, on
# $DOCKER_HOST unless the caller set one.
bench_docker() {
  export DOCKER_HOST="${DOCKER_HOST:-unix:///tmp/docker.sock}"
  DOCKER=/usr/bin/docker
}

# bench_base_tar DIR APPLET...: a busybox root filesystem in DIR (the host's /bin/busybox,
# a symlink per APPLET, root in /etc/passwd and /etc/group), written as DIR.tar.
bench_base_tar() {
  local dir=$1 applet
  shift
  mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root}
  cp /bin/busybox "$dir/bin/busybox"
  for applet in "$@"; do ln -s busybox "$dir/bin/$applet"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
  echo 'root:x:0:' >"$dir/etc/group"
  tar --numeric-owner -C "$dir" -cf "$dir.tar" .
}
