#!/usr/bin/env bash
# Build benchmarks: the same workloads built by tare, BuildKit, the classic docker builder and
# buildah (when installed) in one run, with medians and tare/peer ratios.
#
#   bash bench/build.sh [RUNS]        # default 5 runs per tool and workload
#   BENCH_ONLY="e f" bash bench/build.sh 5   # only these workloads (a b c d cached e f)
#
# Workloads (issue 4 and 5):
#   a  the seed's waste: dd 10 MB, RUN rm, echo
#   b  20 trivial RUN steps
#   c  COPY of a 150 MB, 5,000-file context (also against BuildKit 0.25, the reference daemon)
#   d  a multi-stage build (two independent stages, then a final COPY --from of each)
#   cached-b, cached-c, cached-d: fully cached rebuilds of b, c and d
#   e  RUN --mount=type=cache (issue 13): a RUN fills a 100 MB cache mount once; each timed
#      rebuild changes a build arg above it, so the RUN reruns and reuses the mount
#   f  20 RUN steps with three mounts each (cache, bind, tmpfs): against b, the cost of mounts
# Needs dockerd on $DOCKER_HOST (scripts/test.sh starts one) and hyperfine. buildah runs with
# --runtime runc: its default crun refuses this machine's hybrid cgroup setup.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_REPO"
RUNS="${1:-5}"
ONLY=" ${BENCH_ONLY:-a b c d cached e f} "
want() { [[ "$ONLY" == *" $1 "* ]]; }
bench_docker
WORK="${BENCH_WORK:-/tmp/tare-bench}"
OUT="$WORK/results"
rm -rf "$WORK"; mkdir -p "$WORK" "$OUT"

# TARE_BIN: a tare binary to measure instead of building this tree's release binary.
bench_tare
export TARE_ROOT="$WORK/store"

# --- the base image, made locally and given to every tool ---------------------------------
bench_base_tar "$WORK/base" sh ls cat echo rm mkdir dd true sleep cp
"$TARE" import "$WORK/base.tar" bench-base:latest >/dev/null
$DOCKER import "$WORK/base.tar" bench-base:latest >/dev/null
# Rootless tare: the same binary as the user scripts/test.sh creates (with a subordinate range),
# its own store; compared with tare as root in the same run (issue 16 asks for at most 1.2x).
rootless=()
if id -u tare-rootless >/dev/null 2>&1; then
  mkdir -p "$WORK/rootless/home"
  chown -R tare-rootless: "$WORK/rootless"
  rootless=(setpriv "--reuid=$(id -u tare-rootless)" "--regid=$(id -g tare-rootless)" --clear-groups
            env "HOME=$WORK/rootless/home" "TARE_ROOT=$WORK/rootless/store" "$TARE")
  "${rootless[@]}" import "$WORK/base.tar" bench-base:latest >/dev/null
fi
# BuildKit 0.25 (the reference daemon of ../shared/tools/modern-buildkit.sh), for c, cached-c
# and e, when it can be started; its client talks to its own socket, DOCKER_HOST stays.
MODERN=""
if want c || want cached || want e; then
  host="$DOCKER_HOST"
  eval "$(bash ../shared/tools/modern-buildkit.sh env 2>/dev/null)" || true
  export DOCKER_HOST="$host"
  MODERN="${MODERN_DOCKER:-}"
  [ -n "$MODERN" ] && $MODERN import "$WORK/base.tar" bench-base:latest >/dev/null
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
have_buildah=false
if command -v buildah >/dev/null; then
  skopeo copy -q --src-daemon-host "$DOCKER_HOST" "docker-daemon:bench-base:latest" "containers-storage:localhost/bench-base:latest" && have_buildah=true
fi

# --- workloads ------------------------------------------------------------------------------
mk() { mkdir -p "$WORK/$1"; cat >"$WORK/$1/Dockerfile"; }
mk a <<'DF'
FROM bench-base
RUN dd if=/dev/zero of=/bigfile bs=1M count=10
RUN rm /bigfile
RUN echo done > /done
DF
{ echo "FROM bench-base"; for i in $(seq 1 20); do echo "RUN echo step $i > /step$i"; done; } >"$WORK/b.Dockerfile"
mkdir -p "$WORK/b"; mv "$WORK/b.Dockerfile" "$WORK/b/Dockerfile"
mkdir -p "$WORK/c/data"
python3 - "$WORK/c/data" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(5000):
    d = os.path.join(root, f"d{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(30 * 1024))
PY
printf 'FROM bench-base\nCOPY data /data\n' >"$WORK/c/Dockerfile"
mk d <<'DF'
FROM bench-base AS one
RUN dd if=/dev/urandom of=/one bs=1M count=5
FROM bench-base AS two
RUN dd if=/dev/urandom of=/two bs=1M count=5
FROM bench-base
COPY --from=one /one /one
COPY --from=two /two /two
DF
mk e <<'DF'
FROM bench-base
ARG V=1
RUN echo $V > /v
RUN --mount=type=cache,target=/cache [ -f /cache/big ] || dd if=/dev/urandom of=/cache/big bs=1M count=100 2>/dev/null; cat /v > /out
DF
echo 'lock v1' >"$WORK/f.lock"
{ echo "FROM bench-base"; for i in $(seq 1 20); do
    echo "RUN --mount=type=cache,target=/c --mount=type=bind,source=f.lock,target=/f.lock --mount=type=tmpfs,target=/t echo step $i > /step$i"
  done; } >"$WORK/f.Dockerfile"
mkdir -p "$WORK/f"; mv "$WORK/f.Dockerfile" "$WORK/f/Dockerfile"; mv "$WORK/f.lock" "$WORK/f/f.lock"

# --- runs -----------------------------------------------------------------------------------
run() { # name, then hyperfine arguments
  local name=$1; shift
  # `sync` before every run: each tool starts with no dirty pages of the one before it (a
  # tool measured after buildah's writes otherwise pays for their writeback).
  hyperfine --style none --runs "$RUNS" --prepare sync --export-json "$OUT/$name.json" "$@" >/dev/null
}
for w in a b c d; do
  want "$w" || continue
  ctx="$WORK/$w"
  cmds=(-n tare "$TARE build --no-cache -q -t bench-$w $ctx"
        -n buildkit "DOCKER_BUILDKIT=1 $DOCKER build --no-cache --network=host -q -t bench-$w $ctx"
        -n classic "DOCKER_BUILDKIT=0 $DOCKER build --no-cache --network=host -q -t bench-$w $ctx")
  $have_buildah && cmds+=(-n buildah "buildah bud --runtime runc --no-cache --layers -q -t bench-$w $ctx")
  [ ${#rootless[@]} -gt 0 ] && cmds+=(-n tare-rootless "${rootless[*]} build --no-cache -q -t bench-$w $ctx")
  [ "$w" = c ] && [ -n "$MODERN" ] && cmds+=(-n buildkit-0.25 "$MODERN build --no-cache --network=none -q -t bench-$w $ctx")
  echo "workload $w (cold)"; run "$w" "${cmds[@]}"
done
for w in b c d; do
  want cached || continue
  ctx="$WORK/$w"
  cmds=(-n tare "$TARE build -q -t bench-$w $ctx"
        -n buildkit "DOCKER_BUILDKIT=1 $DOCKER build --network=host -q -t bench-$w $ctx"
        -n classic "DOCKER_BUILDKIT=0 $DOCKER build --network=host -q -t bench-$w $ctx")
  $have_buildah && cmds+=(-n buildah "buildah bud --runtime runc --layers -q -t bench-$w $ctx")
  [ ${#rootless[@]} -gt 0 ] && cmds+=(-n tare-rootless "${rootless[*]} build -q -t bench-$w $ctx")
  [ "$w" = c ] && [ -n "$MODERN" ] && cmds+=(-n buildkit-0.25 "$MODERN build --network=none -q -t bench-$w $ctx")
  echo "workload cached-$w"; run "cached-$w" "${cmds[@]}"
done
# e: the first build (the warm-up) fills the cache mount; the timed ones rerun the RUN with a
# new build arg. BuildKit is the reference daemon's (Dockerfile 1.19), as dockerd 20.10's
# frontend needs a syntax image for RUN --mount.
if want e; then
ctx="$WORK/e"
cmds=(-n tare "$TARE build -q --build-arg V=\$(date +%s%N) -t bench-e $ctx")
if [ -n "$MODERN" ]; then
  cmds+=(-n buildkit "$MODERN build --network=none -q --build-arg V=\$(date +%s%N) -t bench-e $ctx")
fi
echo "workload e (cache mount rebuild)"; run e --warmup 1 "${cmds[@]}"
fi
if want f; then
ctx="$WORK/f"
echo "workload f (three mounts per RUN; compare with b)"
run f -n tare "$TARE build --no-cache -q -t bench-f $ctx" -n tare-no-mounts "$TARE build --no-cache -q -t bench-b $WORK/b"
fi

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print("| workload | tool | median (s) | tare / tool |")
print("|---|---|---|---|")
for name in ["a", "b", "c", "d", "cached-b", "cached-c", "cached-d", "e", "f"]:
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        continue
    results = {r["command"]: r["median"] for r in json.load(open(path))["results"]}
    tare = results.get("tare")
    for tool, median in results.items():
        ratio = f"{tare / median:.2f}x" if tare and tool != "tare" else ""
        if tool == "tare-rootless" and tare:
            ratio = f"rootless / root {median / tare:.2f}x"
        print(f"| {name} | {tool} | {median:.3f} | {ratio} |")
f = os.path.join(out, "f.json")
if os.path.exists(f):
    r = {x["command"]: x["median"] for x in json.load(open(f))["results"]}
    if "tare" in r and "tare-no-mounts" in r:
        extra = (r["tare"] - r["tare-no-mounts"]) / 20 * 1000
        print(f"\nthree mounts (cache, bind, tmpfs) per RUN: {extra:+.1f} ms per step")
PY
