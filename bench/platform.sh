#!/usr/bin/env bash
# Multi-platform and -o benchmarks (issue 14), tare only, in one run, with medians and ratios.
#
#   bash bench/platform.sh [RUNS]     # default 5 runs each
#   TARE_BIN=/path/to/release/tare bash bench/platform.sh   # measure that binary, no build
#
# cross   a cross-compiling Dockerfile (FROM --platform=$BUILDPLATFORM, the work depends on
#         TARGETARCH, no emulation), built --no-cache for linux/amd64 alone and for
#         linux/amd64,linux/arm64: the issue asks for two platforms <= 1.2x one.
# local   -o type=local of a stage holding a 150 MB, 5,000-file tree (the build itself cached)
#         against `cp -a` of the same files: the issue asks for <= 1.5x.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_REPO"
RUNS="${1:-5}"
WORK="${BENCH_WORK:-/tmp/tare-bench-platform}"
OUT="$WORK/results"
rm -rf "$WORK"; mkdir -p "$WORK" "$OUT"
trap 'rm -rf "$WORK/store" "$WORK/out" "$WORK/cp" "$WORK/local/ctx"' EXIT

bench_tare
export TARE_ROOT="$WORK/store"

bench_base_tar "$WORK/base" sh cat echo head gzip wc true
"$TARE" import "$WORK/base.tar" bench-base:latest >/dev/null

# --- cross: the "compile" is single-threaded CPU work that names its target ---------------
mkdir -p "$WORK/cross"
cat >"$WORK/cross/Dockerfile" <<'DF'
FROM --platform=$BUILDPLATFORM bench-base AS build
ARG TARGETARCH
RUN head -c 400000000 /dev/zero | gzip -1 | wc -c > /size && echo "$TARGETARCH" > /app
FROM scratch
COPY --from=build /app /size /
DF
hyperfine --style none --runs "$RUNS" --export-json "$OUT/cross.json" \
  -n one "$TARE build -q --no-cache --platform linux/amd64 -t cross:one $WORK/cross" \
  -n two "$TARE build -q --no-cache --platform linux/amd64,linux/arm64 -t cross:two $WORK/cross" \
  >/dev/null

# --- local: a 150 MB stage written out ------------------------------------------------------
ctx="$WORK/local/ctx"; mkdir -p "$ctx"
python3 - "$ctx" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(50):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d}/f{f}", "wb") as fh:
            fh.write(os.urandom(30_000))
PY
printf 'FROM scratch\nCOPY . /files/\n' >"$WORK/local/Dockerfile"
"$TARE" build -q -f "$WORK/local/Dockerfile" -o "type=local,dest=$WORK/out" "$ctx" >/dev/null
# Checked here: hyperfine's --prepare removes the output before every timed run (cp -a's too).
diff -r "$ctx" "$WORK/out/files" >/dev/null || { echo "the -o tree differs from the context" >&2; exit 1; }
hyperfine --style none --runs "$RUNS" --export-json "$OUT/local.json" \
  --prepare "rm -rf $WORK/out $WORK/cp; sync" \
  -n "tare -o type=local" "$TARE build -q -f $WORK/local/Dockerfile -o type=local,dest=$WORK/out $ctx" \
  -n "cp -a" "cp -a $ctx $WORK/cp" \
  >/dev/null

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def medians(name):
    return {r["command"]: r["median"] for r in json.load(open(f"{out}/{name}.json"))["results"]}
c = medians("cross")
l = medians("local")
print("| workload | command | median (s) | ratio |")
print("|---|---|---|---|")
print(f"| cross | one platform (linux/amd64) | {c['one']:.3f} | |")
print(f"| cross | two platforms (linux/amd64,linux/arm64) | {c['two']:.3f} | {c['two'] / c['one']:.2f}x one |")
print(f"| local | cp -a of the 150 MB tree | {l['cp -a']:.3f} | |")
print(f"| local | tare build -o type=local (cached build) | {l['tare -o type=local']:.3f} | {l['tare -o type=local'] / l['cp -a']:.2f}x cp -a |")
PY
