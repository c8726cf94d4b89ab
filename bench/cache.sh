#!/usr/bin/env bash
# The build cache in a registry (issue 15's speed section): tare against BuildKit 0.25, both
# talking to one loopback docker-registry through a counting proxy (bench/countproxy.py), on
# workloads b, c and d of bench/build.sh, in one run.
#
#   bash bench/cache.sh [RUNS]          # default 3 runs of each measurement; medians
#   TARE_BIN=path/to/tare bash bench/cache.sh
#   CACHE_WORKLOADS="b" bash bench/cache.sh 1   # only these workloads
#   CACHE_LOG_DIR=/tmp/logs bash bench/cache.sh 1    # keep each registry's request log there
#     (one JSON line per request: method, path, status, bytes, start time, duration in ms)
#
# For each workload and tool, each run against an empty registry:
#   export   a build whose every step is cached locally, with --cache-to type=registry,mode=max:
#            what exporting costs
#   import   an empty store (BuildKit: after `builder prune -af` and rmi) building with
#            --cache-from: every step hits, the image is stored locally (its layers downloaded)
#   push     the same with --push instead of a local image (the CI recipe): blob bytes
#            downloaded should be zero for tare
# Bytes are counted at the proxy: request bodies up, response bodies down; "blobs down" is the
# GET /v2/.../blobs/ bodies (layers, configs, cache metadata blobs).
#
# BuildKit: dockerd 28.5 (BuildKit 0.25) from ../shared/tools/modern-buildkit.sh, but a
# separate instance in $CACHE_BK_DIR with the containerd image store turned on: the docker
# driver refuses --cache-to (registry and local alike) with the classic store, and a
# docker-container driver needs the moby/buildkit image from Docker Hub. Its BuildKit talks
# plain HTTP only to registries daemon.json lists by host:port (not by CIDR), so the proxy
# listens on a fixed port, $CACHE_BENCH_PORT (41988). The instance is stopped at the end; its
# chroot stays in $CACHE_BK_DIR for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
RUNS="${1:-3}"
W=$(mktemp -d /tmp/tare-bench-cache.XXXXXX)
PIDS=()
BK_STARTED=false
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  $BK_STARTED && modern_buildkit_stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
for tool in docker-registry python3 curl jq; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

if [ -n "${TARE_BIN:-}" ]; then
  TARE="$TARE_BIN"
else
  cargo build --release --quiet -p tare
  TARE="${CARGO_TARGET_DIR:-$PWD/target}/release/tare"
fi

# --- BuildKit 0.25 with the containerd image store ----------------------------------------
export MODERN_BK_DIR="${CACHE_BK_DIR:-${TMPDIR:-/tmp}/modernbk-cache-bench}"
# (sourced without -e: its mirror lookup reads files that may not exist)
set +eu +o pipefail
MBK_DEFINE_ONLY=1 . "$HERE/../shared/tools/modern-buildkit.sh"
set -euo pipefail
mkdir -p "$MBK_DIR"
PPORT="${CACHE_BENCH_PORT:-41988}"
mbk_ensure_rootfs || exit 1
modern_buildkit_stop >/dev/null 2>&1 || true
mkdir -p "$MBK_ROOT/etc/docker"
printf '{"features":{"containerd-snapshotter":true},"insecure-registries":["127.0.0.1:%s"]}\n' \
  "$PPORT" >"$MBK_ROOT/etc/docker/daemon.json"
BK_STARTED=true
modern_buildkit_start || exit 1
BK="$MODERN_DOCKER"
$BK info --format '{{.DriverStatus}}' | grep -q io.containerd.snapshotter \
  || { echo "the BuildKit daemon does not use the containerd image store" >&2; exit 1; }

# --- the base image and workloads b, c, d (as bench/build.sh makes them) -------------------
base="$W/base"; mkdir -p "$base"/{bin,etc,tmp,proc,sys,dev,root}
cp /bin/busybox "$base/bin/busybox"
for a in sh ls cat echo rm mkdir dd true sleep cp; do ln -s busybox "$base/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$base/etc/passwd"; echo 'root:x:0:' >"$base/etc/group"
tar --numeric-owner -C "$base" -cf "$W/base.tar" .
$BK import "$W/base.tar" bench-base:latest >/dev/null
mkdir -p "$W/b" "$W/c/data" "$W/d"
{ echo "FROM bench-base"; for i in $(seq 1 20); do echo "RUN echo step $i > /step$i"; done; } >"$W/b/Dockerfile"
python3 - "$W/c/data" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(5000):
    d = os.path.join(root, f"d{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(30 * 1024))
PY
printf 'FROM bench-base\nCOPY data /data\n' >"$W/c/Dockerfile"
cat >"$W/d/Dockerfile" <<'DF'
FROM bench-base AS one
RUN dd if=/dev/urandom of=/one bs=1M count=5
FROM bench-base AS two
RUN dd if=/dev/urandom of=/two bs=1M count=5
FROM bench-base
COPY --from=one /one /one
COPY --from=two /two /two
DF

# The base image imported once and saved: every store loads the same image (an import
# records its time, so two imports are two images and no cache key would match).
TARE_ROOT="$W/stores/template" "$TARE" import "$W/base.tar" bench-base:latest >/dev/null
TARE_ROOT="$W/stores/template" "$TARE" save -o "$W/base-image.tar" bench-base:latest
# A tare store with the base image: fresh_store NAME -> its root
fresh_store() {
  rm -rf "$W/stores/$1"; mkdir -p "$W/stores/$1"
  TARE_ROOT="$W/stores/$1" "$TARE" load -q -i "$W/base-image.tar" >/dev/null
  echo "$W/stores/$1"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# An empty registry behind a counting proxy: sets REG (host:port of the proxy) and PLOG.
start_registry() {
  local port pport=$PPORT
  port=$(free_port)
  rm -rf "$W/reg"; mkdir -p "$W/reg"
  cat >"$W/reg.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/reg
http:
  addr: 127.0.0.1:$port
EOF
  docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
  REG_PID=$!; PIDS+=($REG_PID)
  PLOG="$W/proxy.$RANDOM.log"; : >"$PLOG"
  python3 "$HERE/bench/countproxy.py" "$port" "$pport" "$PLOG" &
  PROXY_PID=$!; PIDS+=($PROXY_PID)
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$pport/v2/" >/dev/null && break
    sleep 0.05
  done
  REG="127.0.0.1:$pport"
}
# stop_registry NAME: stops both; with CACHE_LOG_DIR, keeps the request log as NAME.log
stop_registry() {
  kill "$PROXY_PID" "$REG_PID" 2>/dev/null || true
  wait "$PROXY_PID" "$REG_PID" 2>/dev/null || true
  if [ -n "${CACHE_LOG_DIR:-}" ]; then
    mkdir -p "$CACHE_LOG_DIR"; cp "$PLOG" "$CACHE_LOG_DIR/$1.log"
  fi
}
# bytes FROM_LINE: "up down blobs_down" of the proxy log's lines after FROM_LINE
bytes() {
  tail -n +"$(($1 + 1))" "$PLOG" | jq -rs '
    [ (map(.up) | add // 0),
      (map(.down) | add // 0),
      (map(select(.m == "GET" and (.p | test("/blobs/sha256:")))) | map(.down) | add // 0) ]
    | @tsv'
}
lines() { wc -l <"$PLOG"; }
# timed OUTFILE CMD...: runs CMD (output to OUTFILE), prints the seconds it took
timed() {
  local out=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$out" 2>&1 || { echo "failed: $*" >&2; tail -20 "$out" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}
bk_reset() { # BuildKit's "empty store": no build cache, no image of the workload
  $BK builder prune -af >/dev/null
  $BK rmi -f "bench-$1" >/dev/null 2>&1 || true
}

RES="$W/results.tsv"; : >"$RES"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for w in ${CACHE_WORKLOADS:-b c d}; do
  ctx="$W/$w"
  # Warm: each tool has built the workload once (every step cached locally).
  warm=$(fresh_store "warm-$w")
  want=$(TARE_ROOT="$warm" "$TARE" build -q -t "bench-$w" "$ctx")
  bk_reset "$w"
  $BK build -q --network=none -t "bench-$w" "$ctx" >/dev/null
  for r in $(seq "$RUNS"); do
    # tare
    start_registry
    n=$(lines)
    s=$(TARE_ROOT="$warm" timed "$W/out" "$TARE" build -q --cache-to "type=registry,ref=$REG/cache-$w:tare,mode=max" -t "bench-$w" "$ctx")
    printf '%s\ttare\texport\t%s\t%s\n' "$w" "$s" "$(bytes "$n")" >>"$RES"
    n=$(lines); root=$(fresh_store "import-$w")
    s=$(TARE_ROOT="$root" timed "$W/out" "$TARE" build -q --cache-from "type=registry,ref=$REG/cache-$w:tare" -t "bench-$w" "$ctx")
    # Every step hit the cache: the very image the warm store built.
    [ "$(cat "$W/out")" = "$want" ] || { echo "tare import made another image than $want:" >&2; cat "$W/out" >&2; exit 1; }
    printf '%s\ttare\timport\t%s\t%s\n' "$w" "$s" "$(bytes "$n")" >>"$RES"
    n=$(lines); root=$(fresh_store "push-$w")
    s=$(TARE_ROOT="$root" timed "$W/out" "$TARE" build -q --cache-from "type=registry,ref=$REG/cache-$w:tare" --push -t "$REG/app-$w:tare" "$ctx")
    printf '%s\ttare\tpush\t%s\t%s\n' "$w" "$s" "$(bytes "$n")" >>"$RES"
    rm -rf "$W/stores/import-$w" "$W/stores/push-$w"
    stop_registry "$w-tare-$r"
    # BuildKit 0.25
    start_registry
    n=$(lines)
    s=$(timed "$W/out" $BK buildx build -q --network=none --cache-to "type=registry,ref=$REG/cache-$w:bk,mode=max" -t "bench-$w" "$ctx")
    printf '%s\tbuildkit\texport\t%s\t%s\n' "$w" "$s" "$(bytes "$n")" >>"$RES"
    bk_reset "$w"; n=$(lines)
    s=$(timed "$W/out" $BK buildx build -q --network=none --cache-from "type=registry,ref=$REG/cache-$w:bk" -t "bench-$w" "$ctx")
    printf '%s\tbuildkit\timport\t%s\t%s\n' "$w" "$s" "$(bytes "$n")" >>"$RES"
    bk_reset "$w"; n=$(lines)
    s=$(timed "$W/out" $BK buildx build -q --network=none --cache-from "type=registry,ref=$REG/cache-$w:bk" --push -t "$REG/app-$w:bk" "$ctx")
    printf '%s\tbuildkit\tpush\t%s\t%s\n' "$w" "$s" "$(bytes "$n")" >>"$RES"
    # back to warm for the next run's export
    $BK build -q --network=none -t "bench-$w" "$ctx" >/dev/null
    stop_registry "$w-buildkit-$r"
  done
  rm -rf "$W/stores/warm-$w"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tare: $("$TARE" version 2>/dev/null | head -1 || true); BuildKit: $MODERN_BK_BUILDKIT; runs: $RUNS; load before: $LOAD_BEFORE"
python3 - "$RES" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
med = {}
for w, tool, what, s, up, down, blobs in rows:
    med.setdefault((w, what, tool), []).append((float(s), int(up), int(down), int(blobs)))
def m(vals, i):
    return statistics.median(v[i] for v in vals)
mb = lambda b: f"{b / 1e6:.3f}"
print("| workload | measure | tool | median (s) | MB up | MB down | blob MB down | tare / buildkit |")
print("|---|---|---|---|---|---|---|---|")
for w in "bcd":
    for what in ("export", "import", "push"):
        t = med.get((w, what, "tare"))
        b = med.get((w, what, "buildkit"))
        for tool, vals in (("tare", t), ("buildkit", b)):
            if not vals:
                continue
            ratio = f"{m(t, 0) / m(b, 0):.2f}x" if tool == "tare" and t and b else ""
            print(f"| {w} | {what} | {tool} | {m(vals, 0):.3f} | {mb(m(vals, 1))} | "
                  f"{mb(m(vals, 2))} | {mb(m(vals, 3))} | {ratio} |")
PY
