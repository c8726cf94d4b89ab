#!/usr/bin/env bash
# Push and pull of a 150 MB, 3-layer image: tare against `skopeo copy`, to and from the same
# local registries (Debian's docker-registry on 127.0.0.1), in one run.
#
#   pull: registry -> tare's store (fresh --root each run)  vs  skopeo copy docker:// -> oci:
#   push: tare's store -> empty registry                     vs  skopeo copy oci: -> docker://
#
# Each side runs RUNS times (default 5) alternately; prints medians of wall time, the ratio
# tare/skopeo, and the peak RSS (from /usr/bin/time -v). The push target registry is wiped
# before every push, so both sides upload all three layers.
#
#   TARE_BIN=path/to/tare RUNS=5 bench/registry.sh     (TARE= is accepted too)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
TARE_BIN=${TARE_BIN:-${TARE:-}}
bench_tare
for tool in docker-registry skopeo /usr/bin/time jq sha256sum gzip; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

W=$(mktemp -d /tmp/tare-bench-registry.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_registry NAME -> sets ${NAME}_PORT, storage in $W/NAME
start_registry() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$W/$name"
  cat >"$W/$name.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/$name
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
  docker-registry serve "$W/$name.yml" >"$W/$name.log" 2>&1 &
  PIDS+=($!)
  eval "${name}_PID=$!"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
    sleep 0.05
  done
  eval "${name}_PORT=$port"
}

stop_registry() {
  local pid_var="${1}_PID"
  kill "${!pid_var}" 2>/dev/null || true
  wait "${!pid_var}" 2>/dev/null || true
}

# --- the image: 3 gzip layers of ~50 MB each, as an OCI layout --------------------------------
echo "making the image..." >&2
L=$W/layout
mkdir -p "$L/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
diff_ids=() layers=()
for i in 1 2 3; do
  d=$W/l$i
  mkdir -p "$d/data"
  # Random data (incompressible: the blob is as big as the content), plus some text.
  head -c $((48 << 20)) /dev/urandom >"$d/data/random$i.bin"
  seq 1 300000 >"$d/data/numbers$i.txt"
  tar -C "$d" --sort=name --mtime=@0 --owner=0 --group=0 -cf "$d.tar" data
  diff_ids+=("sha256:$(sha256sum "$d.tar" | cut -d' ' -f1)")
  gzip -1 -n -c "$d.tar" >"$d.tgz"
  dg=$(sha256sum "$d.tgz" | cut -d' ' -f1)
  mv "$d.tgz" "$L/blobs/sha256/$dg"
  layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dg\",\"size\":$(stat -c %s "$L/blobs/sha256/$dg")}")
  rm -rf "$d" "$d.tar"
done
arch=$(uname -m); [[ $arch == x86_64 ]] && arch=amd64; [[ $arch == aarch64 ]] && arch=arm64
config=$(printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["%s","%s","%s"]}}' \
  "$arch" "${diff_ids[0]}" "${diff_ids[1]}" "${diff_ids[2]}")
printf '%s' "$config" >"$W/config.json"
cdg=$(sha256sum "$W/config.json" | cut -d' ' -f1)
mv "$W/config.json" "$L/blobs/sha256/$cdg"
manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[%s,%s,%s]}' \
  "$cdg" "$(stat -c %s "$L/blobs/sha256/$cdg")" "${layers[0]}" "${layers[1]}" "${layers[2]}")
printf '%s' "$manifest" >"$W/manifest.json"
mdg=$(sha256sum "$W/manifest.json" | cut -d' ' -f1)
msize=$(stat -c %s "$W/manifest.json")
mv "$W/manifest.json" "$L/blobs/sha256/$mdg"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
  "$mdg" "$msize" >"$L/index.json"
total=$(du -cb "$L"/blobs/sha256/* | tail -1 | cut -f1)
echo "image: 3 layers, $((total / 1000000)) MB of blobs" >&2

start_registry src
skopeo copy -q --dest-tls-verify=false "oci:$L:bench" "docker://127.0.0.1:$src_PORT/bench:1"
SRC=127.0.0.1:$src_PORT/bench:1

# measure NAME CMD... -> appends "seconds rss_kb" to $W/NAME.times
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$W/time.out" "$@" >/dev/null 2>"$W/cmd.err" || { cat "$W/cmd.err" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$W/time.out" |
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.out")
  echo "$wall $rss" >>"$W/$name.times"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# A store holding the image, for tare's pushes.
STORE=$W/store-push
"$TARE" --root "$STORE" pull -q "$SRC" >/dev/null
PUSH_SRC=$SRC

echo "running $RUNS rounds..." >&2
for r in $(seq "$RUNS"); do
  # pull
  rm -rf "$W/store" "$W/oci-out"
  measure tare-pull "$TARE" --root "$W/store" pull -q "$SRC"
  measure skopeo-pull skopeo copy -q --src-tls-verify=false "docker://$SRC" "oci:$W/oci-out:bench"
  # push, each into an empty registry
  start_registry dst
  measure tare-push "$TARE" --root "$STORE" push -q "$PUSH_SRC" "127.0.0.1:$dst_PORT/bench:1"
  stop_registry dst; rm -rf "$W/dst"
  start_registry dst
  measure skopeo-push skopeo copy -q --dest-tls-verify=false "oci:$L:bench" "docker://127.0.0.1:$dst_PORT/bench:1"
  stop_registry dst; rm -rf "$W/dst"
  echo "  round $r done" >&2
done

printf '\n%-6s %-7s %10s %12s %10s\n' op tool "median s" "peak RSS MB" "ratio"
for op in pull push; do
  t=$(cut -d' ' -f1 "$W/tare-$op.times" | median)
  s=$(cut -d' ' -f1 "$W/skopeo-$op.times" | median)
  tr=$(cut -d' ' -f2 "$W/tare-$op.times" | sort -n | tail -1)
  sr=$(cut -d' ' -f2 "$W/skopeo-$op.times" | sort -n | tail -1)
  ratio=$(awk -v a="$t" -v b="$s" 'BEGIN { printf "%.2fx", a / b }')
  printf '%-6s %-7s %10.2f %12.1f %10s\n' "$op" tare "$t" "$(awk -v k="$tr" 'BEGIN{print k/1024}')" "$ratio"
  printf '%-6s %-7s %10.2f %12.1f\n' "$op" skopeo "$s" "$(awk -v k="$sr" 'BEGIN{print k/1024}')"
done
