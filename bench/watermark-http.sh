#!/usr/bin/env bash
# HTTP throughput of POST /v1/watermark: the tasklet daemon against a minimal
# Flask + Pillow server doing the same work, in one run, each server pinned
# to one core (taskset -c 1) and the load generator to the other (taskset -c 0).
# Besides images/s (wall clock), it reports images per CPU-second of the
# server process (utime + stime from /proc), which stays fair on a machine
# that runs other work too.
#
# Usage: bench/watermark-http.sh [DURATION=30s] [CONCURRENCY=8] [IMAGE=tests/data/pier_1980x1280.jpg]
# Needs: a release build (cargo build --release), python3 with pillow and flask.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-30s}
CONCURRENCY=${2:-8}
IMAGE=${3:-tests/data/pier_1980x1280.jpg}
BIN=${CARGO_TARGET_DIR:-target}/release/tasklet
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
TICKS=$(getconf CLK_TCK)

cpu_seconds() { # utime + stime of a process and its threads, in seconds
  awk -v t="$TICKS" '{ print ($14 + $15) / t }' "/proc/$1/stat"
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}

measure() { # name pid port path
  local name=$1 pid=$2 port=$3 path=$4
  wait_port "$port"
  # Warm up, then measure.
  taskset -c 0 "$BIN" bench watermark --url "http://127.0.0.1:$port$path" \
    --concurrency "$CONCURRENCY" --duration 3s --image "$IMAGE" --json > /dev/null
  local before after
  before=$(cpu_seconds "$pid")
  taskset -c 0 "$BIN" bench watermark --url "http://127.0.0.1:$port$path" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --image "$IMAGE" --json > "$TMP/$name.json"
  after=$(cpu_seconds "$pid")
  python3 - "$TMP/$name.json" "$name" "$before" "$after" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]; name = sys.argv[2]
cpu = float(sys.argv[4]) - float(sys.argv[3])
print(f"{name:14} {r['per_s']:8.1f} images/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms"
      f"  p99 {r['p99_ms']:7.1f} ms  errors {r['errors']:4d}"
      f"  server cpu {cpu:6.1f} s  {r['completed'] / cpu if cpu else 0:7.1f} images/cpu-s")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "image $IMAGE, concurrency $CONCURRENCY, $DURATION each, servers on core 1, load on core 0"
TASKLET__WATERMARK__ENABLED=true TASKLET__SERVER__ADDR=127.0.0.1:18089 \
TASKLET__SERVER__WORKERS=1 TASKLET__POOLS__COMPOSITOR=1 \
TASKLET__WATERMARK__MAX_IN_FLIGHT=64 TASKLET__LOG__LEVEL=warn \
TASKLET__DATABASE__URL="sqlite://$TMP/bench.db" \
  taskset -c 1 "$BIN" --config config.toml run > "$TMP/tasklet.log" 2>&1 &
measure tasklet $! 18089 /v1/watermark

taskset -c 1 python3 bench/python/flask_server.py --port 18090 > "$TMP/flask.log" 2>&1 &
measure flask+pillow $! 18090 /v1/watermark
