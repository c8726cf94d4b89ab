#!/usr/bin/env bash
# `tare diff` and reproducible builds (issue 17), in one run, release build:
#
#   bash bench/diff.sh [RUNS]      # default 5 runs per measurement
#   BENCH_ONLY=rewrite bash bench/diff.sh 5     # only one part: diff or rewrite
#
# 1. Two 1.1 GB, 50,000-file images sharing their base (five COPY layers of 48,000 files,
#    then one layer of 2,000 files each: half the same, a quarter changed, a quarter renamed),
#    built by tare, then saved with gzip layers and loaded into a fresh store (as pulled images
#    are stored). Measured: `tare diff A B` with no cached file index (the index directory is
#    removed before each run), with the indexes cached, and the decompression floor: every
#    distinct layer blob of the two images inflated once, one after the other (Python's zlib,
#    the same zlib algorithm tare's flate2/zlib-rs runs).
# 2. Workload c of bench/build.sh (COPY of a 150 MB, 5,000-file context), `tare build
#    --no-cache` against the same build with `--source-date-epoch N --rewrite-timestamp`.
# Needs hyperfine and about 5 GB of free disk under $BENCH_WORK (default /tmp/tare-bench-diff).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_REPO"
RUNS="${1:-5}"
ONLY=" ${BENCH_ONLY:-diff rewrite} "
want() { [[ "$ONLY" == *" $1 "* ]]; }
WORK="${BENCH_WORK:-/tmp/tare-bench-diff}"
rm -rf "$WORK"; mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# TARE_BIN: a release binary already built (then nothing is compiled).
bench_tare
BUILD_STORE="$WORK/build-store"
STORE="$WORK/store"

export TARE_ROOT="$STORE"
if want diff; then
# --- the images -------------------------------------------------------------------------------
python3 - "$WORK/ctx" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(17)
text = b"abcdefghij klmnopqrstuvwxyz\n" * 4096
def content(size, seed):
    r = random.Random(seed)
    half = size // 2
    return r.randbytes(half) + (text * (size // len(text) + 1))[: size - half]
def size_of(i):
    # Mostly small files, every 100th large: 48,000 base files make about 1.04 GB.
    return 5_000 * (40 if i % 100 == 0 else 1 + i % 7)
for i in range(48_000):
    d = os.path.join(root, "base", f"l{i % 5}", f"d{i % 97:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(content(size_of(i), i))
for side in ("a", "b"):
    for i in range(2_000):
        d = os.path.join(root, side, f"d{i % 20:02d}")
        os.makedirs(d, exist_ok=True)
        name, seed, size = f"f{i:05d}", 1_000_000 + i, size_of(i)
        if side == "b" and i >= 1_000:
            if i < 1_500:
                seed, size = seed + 7, size + 3_000     # changed, and larger
            else:
                name = f"g{i:05d}"                      # a quarter renamed
        with open(os.path.join(d, name), "wb") as f:
            f.write(content(size, seed))
PY
{
  echo "FROM scratch"
  for l in 0 1 2 3 4; do echo "COPY base/l$l /l$l"; done
} >"$WORK/ctx/Dockerfile.base"
printf 'FROM bench-diff-base\nCOPY a /app\n' >"$WORK/ctx/Dockerfile.a"
printf 'FROM bench-diff-base\nCOPY b /app\n' >"$WORK/ctx/Dockerfile.b"
for img in base a b; do
  TARE_ROOT="$BUILD_STORE" "$TARE" build -q -f "$WORK/ctx/Dockerfile.$img" \
    -t "bench-diff-$img" "$WORK/ctx" >/dev/null
done
TARE_ROOT="$BUILD_STORE" "$TARE" save --format oci --compression gzip -o "$WORK/ab.tar" \
  bench-diff-a bench-diff-b
rm -rf "$BUILD_STORE"
"$TARE" load -q -i "$WORK/ab.tar" >/dev/null
rm -f "$WORK/ab.tar"
du -sh "$STORE/blobs" | sed 's/^/stored blobs: /'
"$TARE" diff bench-diff-a bench-diff-b | sed -n '1,6p'

# --- the decompression floor ------------------------------------------------------------------
python3 - "$STORE" <<'PY'
import json, os, sys, time, zlib
store = sys.argv[1]
blobs = set()
for name in os.listdir(os.path.join(store, "images")):
    with open(os.path.join(store, "images", name)) as f:
        rec = json.load(f)
    for layer in rec["layers"]:
        blobs.add(layer["digest"].split(":")[1])
start, total = time.time(), 0
for hex_ in sorted(blobs):
    d = zlib.decompressobj(wbits=31)
    with open(os.path.join(store, "blobs", "sha256", hex_), "rb") as f:
        while chunk := f.read(1 << 20):
            total += len(d.decompress(chunk))
print(f"decompression floor: {len(blobs)} distinct layers, {total / 1e9:.2f} GB of tar, "
      f"{time.time() - start:.2f} s (one core)")
PY

hyperfine --runs "$RUNS" --style basic \
  --prepare "rm -rf '$STORE/index'" -n "diff, no cached index" \
  "'$TARE' diff bench-diff-a bench-diff-b >/dev/null"
"$TARE" diff bench-diff-a bench-diff-b >/dev/null
hyperfine --runs "$RUNS" --warmup 1 --style basic -n "diff, cached indexes" \
  "'$TARE' diff bench-diff-a bench-diff-b >/dev/null"
rm -rf "$STORE" "$WORK/ctx"
fi

want rewrite || exit 0
# --- --rewrite-timestamp on workload c --------------------------------------------------------
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
bench_base_tar "$WORK/base"
"$TARE" import "$WORK/base.tar" bench-base:latest >/dev/null
printf 'FROM bench-base\nCOPY data /data\n' >"$WORK/c/Dockerfile"
EPOCH=$(( $(date +%s) - 86400 ))
hyperfine --runs "$RUNS" --warmup 1 --style basic \
  -n "build c" "'$TARE' build -q --no-cache '$WORK/c' >/dev/null" \
  -n "build c --rewrite-timestamp" \
  "'$TARE' build -q --no-cache --source-date-epoch $EPOCH --rewrite-timestamp '$WORK/c' >/dev/null"
