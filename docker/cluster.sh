#!/usr/bin/env bash
# A Dask cluster for `mlgrade grade --scheduler`, in containers made from an autograder zip.
#
#   docker/cluster.sh start ZIP [WORKERS] [PORT]   # a scheduler and WORKERS workers (default 2)
#   docker/cluster.sh stop                         # removes them
#
# The image is the autograder image (build-image.sh) plus dask and distributed from WHEELS
# (default ./wheels-cluster, filled on the host with `pip download dask distributed -d DIR
# --only-binary=:all: --python-version 3.11`). Every container uses the host network
# (one machine here; on several hosts run the worker line on each, with the scheduler's
# address). Each worker is one grading process (--nthreads 1) with the preload that imports
# numpy and torch once and keeps the fork server; its memory limit (WORKER_MEMORY, default
# 3GiB) leaves room for the sandbox's own limits, which hold first. The scheduler regrades a
# task once after a worker death (allowed-failures 1). Then grade from the host:
#   mlgrade grade ASSIGNMENT SUBMISSIONS --scheduler tcp://127.0.0.1:PORT
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${PREFIX:-mlgrade-cluster}
VENV=/opt/mlgrade/venv

stop() {
  ids=$(docker ps -aq --filter "label=mlgrade.cluster=$PREFIX")
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
}

case "${1:-}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start ZIP [WORKERS] [PORT] | $0 stop" >&2; exit 2 ;;
esac
[ $# -ge 2 ] || { echo "usage: $0 start ZIP [WORKERS] [PORT]" >&2; exit 2; }
ZIP=$2; WORKERS=${3:-2}; PORT=${4:-8786}
WHEELS=$(realpath "${WHEELS:-./wheels-cluster}")
WORKER_MEMORY=${WORKER_MEMORY:-3GiB}
ls "$WHEELS"/distributed-*.whl >/dev/null 2>&1 || { echo "cluster.sh: no distributed wheel in $WHEELS" >&2; exit 2; }

base=$("$HERE/build-image.sh" "$ZIP")
tag="mlgrade-cluster:$( (echo "$base"; sha256sum "$HERE/Dockerfile.cluster"; ls "$WHEELS") | sha256sum | cut -c1-16)"
if ! docker image inspect "$tag" >/dev/null 2>&1; then
  ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
  cp -r "$WHEELS" "$ctx/wheels"
  echo "cluster.sh: building $tag on $base" >&2
  DOCKER_BUILDKIT=0 docker build -q --network "${BUILD_NETWORK:-host}" --build-arg "AUTOGRADER_IMAGE=$base" \
    -t "$tag" -f "$HERE/Dockerfile.cluster" "$ctx" >&2
fi

stop
address="tcp://127.0.0.1:$PORT"
docker run -d --name "$PREFIX-scheduler" --label "mlgrade.cluster=$PREFIX" --network host \
  -e DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1 -e DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0 \
  "$tag" "$VENV/bin/dask" scheduler --host 127.0.0.1 --port "$PORT" --dashboard-address :0 >/dev/null
for k in $(seq 1 "$WORKERS"); do
  # chmod: the worker user must traverse / (as run_autograder does for a debootstrap image)
  docker run -d --name "$PREFIX-worker-$k" --label "mlgrade.cluster=$PREFIX" --network host \
    "$tag" bash -c "chmod o+x / && exec $VENV/bin/dask worker $address --nthreads 1 --nworkers 1 \
      --memory-limit $WORKER_MEMORY --preload mlgrade.cluster --name $PREFIX-worker-$k --host 127.0.0.1 \
      --no-dashboard" >/dev/null
done
echo "$address"
