#!/usr/bin/env bash
# Container start-up: `tare run --rm IMAGE true` against `docker run --rm IMAGE true` (and the
# same tare run with --network host, --network none and through runc), same busybox image, warm store, in one run; prints medians and
# the tare/docker ratio (issue 6: goal under 50 ms and at most 0.2x docker). Then detached
# starts: `tare run -d IMAGE sleep 60` against `docker run -d` (issue 20: at most 0.2x), the
# containers removed before each run. Last, `tare exec C true` against `docker exec C true` in a
# running container of each (issue 20: at most 0.2x).
#
#   bash bench/run_startup.sh [RUNS]      # default 30 runs each
#
# Needs dockerd on $DOCKER_HOST (scripts/test.sh starts one) and hyperfine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_REPO"
RUNS="${1:-30}"
bench_docker
WORK="${BENCH_WORK:-/tmp/tare-bench-run}"
rm -rf "$WORK"; mkdir -p "$WORK"

bench_tare
export TARE_ROOT="$WORK/store"

bench_base_tar "$WORK/base" sh true echo sleep
"$TARE" import "$WORK/base.tar" bench-run:latest >/dev/null
$DOCKER import "$WORK/base.tar" bench-run:latest >/dev/null
# Warm both: tare extracts the layer snapshot on first use, docker prepares its layer.
"$TARE" run --rm bench-run true
$DOCKER run --rm --network none bench-run true

hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/results.json" \
  -n tare "$TARE run --rm bench-run true" \
  -n tare-nethost "$TARE run --rm --network host bench-run true" \
  -n tare-netnone "$TARE run --rm --network none bench-run true" \
  -n tare-runc "$TARE run --rm --runtime runc bench-run true" \
  -n docker "$DOCKER run --rm --network none bench-run true" >/dev/null

python3 - "$WORK/results.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in results.items()}
print(f"{'command':<14}{'median ms':>12}{'min ms':>10}{'max ms':>10}")
for k, r in results.items():
    print(f"{k:<14}{med[k]:>12.1f}{r['min']*1000:>10.1f}{r['max']*1000:>10.1f}")
print(f"tare/docker ratio: {med['tare'] / med['docker']:.3f}")
print(f"tare-nethost/docker ratio: {med['tare-nethost'] / med['docker']:.3f}")
print(f"tare-netnone/docker ratio: {med['tare-netnone'] / med['docker']:.3f}")
print(f"tare-runc/docker ratio: {med['tare-runc'] / med['docker']:.3f}")
PY
# Detached: the time until the ID is printed; the containers are removed between runs.
cat >"$WORK/clean.sh" <<CLEAN
ids=\$("$TARE" ps -aq); [ -z "\$ids" ] || "$TARE" rm -f \$ids >/dev/null
ids=\$($DOCKER ps -aq --filter label=tare-bench); [ -z "\$ids" ] || $DOCKER rm -f \$ids >/dev/null
CLEAN
hyperfine -N --warmup 2 --runs "$RUNS" --prepare "bash $WORK/clean.sh" --export-json "$WORK/detached.json" \
  -n tare-d "$TARE run -d bench-run sleep 60" \
  -n docker-d "$DOCKER run -d --label tare-bench --network none bench-run sleep 60" >/dev/null
bash "$WORK/clean.sh"
python3 - "$WORK/detached.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in results.items()}
for k, r in results.items():
    print(f"{k:<14}{med[k]:>12.1f}{r['min']*1000:>10.1f}{r['max']*1000:>10.1f}")
print(f"tare-d/docker-d ratio: {med['tare-d'] / med['docker-d']:.3f}")
PY
# exec: one running container each, the same command joined into it.
"$TARE" run -d --name bench-exec bench-run sleep 600 >/dev/null
$DOCKER run -d --name bench-exec --label tare-bench --network none bench-run sleep 600 >/dev/null
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/exec.json" \
  -n tare-exec "$TARE exec bench-exec true" \
  -n docker-exec "$DOCKER exec bench-exec true" >/dev/null
bash "$WORK/clean.sh"
python3 - "$WORK/exec.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in results.items()}
for k, r in results.items():
    print(f"{k:<14}{med[k]:>12.1f}{r['min']*1000:>10.1f}{r['max']*1000:>10.1f}")
print(f"tare-exec/docker-exec ratio: {med['tare-exec'] / med['docker-exec']:.3f}")
PY
$DOCKER rmi bench-run:latest >/dev/null || true
