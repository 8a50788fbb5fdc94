#!/usr/bin/env bash
# In-process stamp per core: tasklet's stamp (criterion, benches/stamp.rs)
# and Pillow's Image.open → paste → save(quality=85) (bench/python/stamp_pillow.py),
# one after the other on the same core (taskset -c 1), same photos.
# Both report wall time and CPU time; on a machine that runs other work, the
# CPU time is the per-core figure.
set -euo pipefail
cd "$(dirname "$0")/.."
taskset -c 1 cargo bench --bench stamp -- --noplot 2>&1 | grep -E "^stamp|time:|thrpt:"
taskset -c 1 python3 bench/python/stamp_pillow.py --seconds "${1:-10}"
