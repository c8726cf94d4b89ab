#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what the tests need, starts the
# services they use (dockerd, the reference BuildKit, a loopback registry), then runs fmt, clippy
# and every test.
# `.ci/run` calls this and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

# --- packages -----------------------------------------------------------------------------
# The real peers tare is checked against, and the tools the tests drive.
PACKAGES=(docker.io buildah skopeo umoci runc crun docker-registry busybox-static debootstrap
          jq zstd bzip2 xz-utils gzip tar util-linux bsdutils iproute2 hyperfine curl openssl
          passt uidmap gcc libc6-dev openssh-client qemu-user-static tmux
          chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- an arm64 base for foreign RUN steps ---------------------------------------------------
# tests/build/multiplatform.rs runs arm64 RUN steps under qemu-user-static (`tare binfmt
# --install arm64` registers the handler) on an image holding Debian's arm64 busybox-static.
ARM64_BUSYBOX=/var/cache/tare-test/arm64/busybox
if [ ! -f "$ARM64_BUSYBOX" ]; then
  log "fetching busybox-static:arm64 into $ARM64_BUSYBOX"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  debdir=$(mktemp -d)
  (cd "$debdir" && apt-get download -qq busybox-static:arm64)
  dpkg-deb -x "$debdir"/busybox-static_*_arm64.deb "$debdir/x"
  mkdir -p "$(dirname "$ARM64_BUSYBOX")"
  cp "$debdir/x/bin/busybox" "$ARM64_BUSYBOX"
  rm -rf "$debdir"
fi

# --- dockerd ------------------------------------------------------------------------------
export DOCKER_HOST=unix:///tmp/docker.sock
if ! /usr/bin/docker info >/dev/null 2>&1; then
  log "starting dockerd on $DOCKER_HOST"
  mkdir -p /tmp/dockerdata /tmp/dockerexec
  nohup dockerd --host "$DOCKER_HOST" --data-root /tmp/dockerdata --exec-root /tmp/dockerexec \
    --iptables=false --bridge=none >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    /usr/bin/docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  /usr/bin/docker info >/dev/null 2>&1 || { cat /tmp/dockerd.log; echo "dockerd did not start" >&2; exit 1; }
fi

# --- the reference BuildKit ----------------------------------------------------------------
# The conformance suite compares tare with current BuildKit (Docker 28.5, BuildKit 0.25), which
# ../shared/tools/modern-buildkit.sh runs in a chroot beside dockerd 20.10. Its `env` mode starts
# it (cached after the first run) and prints the exports; the host's dockerd stays DOCKER_HOST.
MODERN_BK_SCRIPT=../shared/tools/modern-buildkit.sh
[ -f "$MODERN_BK_SCRIPT" ] || { echo "$MODERN_BK_SCRIPT is missing: the conformance suite needs it" >&2; exit 1; }
log "starting the reference BuildKit ($MODERN_BK_SCRIPT)"
modern_env=$(bash "$MODERN_BK_SCRIPT" env) || { echo "the reference BuildKit did not start" >&2; exit 1; }
eval "$modern_env"
export DOCKER_HOST=unix:///tmp/docker.sock MODERN_DOCKER
log "reference: $("$MODERN_DOCKER" version --format 'docker {{.Server.Version}}'), BuildKit $MODERN_BK_BUILDKIT"

# --- rootless -----------------------------------------------------------------------------
# The rootless tests (tests/run/rootless.rs, tests/security/rootless.rs) run tare as
# `tare-rootless`, an ordinary user with a subordinate ID range, through setpriv; `nobody` is
# the user without one. pasta opens /dev/net/tun as that user: it must be 0666, the
# distributions' default, which some hosts tighten.
if ! id -u tare-rootless >/dev/null 2>&1; then
  log "creating the rootless test user tare-rootless"
  useradd --no-create-home --shell /usr/sbin/nologin tare-rootless
fi
if ! grep -q '^tare-rootless:' /etc/subuid || ! grep -q '^tare-rootless:' /etc/subgid; then
  usermod --add-subuids 100000-165535 --add-subgids 100000-165535 tare-rootless
fi
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  log "chmod 0666 /dev/net/tun (pasta's tun device for rootless runs)"
  chmod 0666 /dev/net/tun
fi

# --- the checks ---------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "cargo test"
# At most two tests at a time per binary keeps mount-heavy tests from starving 2 cores.
results=$(mktemp)
status=0
cargo test --workspace -- --test-threads=2 2>&1 | tee "$results" || status=$?
# cargo prints one `test result:` line per test binary (doc-test binaries often count 0);
# close with the totals on one line so the whole run reads as one result.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
rm -f "$results"
exit "$status"
