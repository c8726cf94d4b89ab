#!/usr/bin/env bash
# `tare images` with 500 images in the store (issue 20: under 50 ms), against `docker images`
# with the same 500 images imported, in one run.
#
#   bash bench/images.sh [COUNT]      # default 500 images
#
# Needs dockerd on $DOCKER_HOST (scripts/test.sh starts one) and hyperfine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_REPO"
COUNT="${1:-500}"
bench_docker
WORK="${BENCH_WORK:-/tmp/tare-bench-images}"
rm -rf "$WORK"; mkdir -p "$WORK/src"

bench_tare
export TARE_ROOT="$WORK/store"

for i in $(seq 1 "$COUNT"); do
  mkdir -p "$WORK/src/$i"; echo "$i" >"$WORK/src/$i/f"
  tar -C "$WORK/src/$i" -cf "$WORK/src/$i.tar" .
  "$TARE" import "$WORK/src/$i.tar" "bench-images-$i:v1" >/dev/null
  $DOCKER import "$WORK/src/$i.tar" "bench-images-$i:v1" >/dev/null
done
hyperfine -N --warmup 3 --runs 20 --export-json "$WORK/results.json" \
  -n tare "$TARE images" \
  -n tare-q "$TARE images -q" \
  -n docker "$DOCKER images --filter reference=bench-images-*" >/dev/null
python3 - "$WORK/results.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for k, r in results.items():
    print(f"{k:<10}{r['median']*1000:>10.1f} ms")
print(f"tare/docker ratio: {results['tare']['median'] / results['docker']['median']:.3f}")
PY
$DOCKER images -q --filter 'reference=bench-images-*' | xargs -r $DOCKER rmi -f >/dev/null
