#!/usr/bin/env bash
# A Dask cluster over mutual TLS for `mlgrade grade --scheduler`, in containers made from an
# autograder zip.
#
#   docker/cluster.sh start ZIP [WORKERS] [PORT]   # a TLS scheduler and WORKERS workers (default 2)
#   docker/cluster.sh stop                         # removes them
#
# Certificates: TLS_DIR (default ./cluster-tls) made with `mlgrade certificates` (MLGRADE, default
# `mlgrade`, on this host) unless it holds them already; each container is given ca.pem and its own
# role's certificate and key only (read-only), the client's stay on the host.
# The image is the autograder image (build-image.sh) plus dask and distributed from WHEELS
# (default ./wheels-cluster, filled on the host with `pip download dask distributed -d DIR
# --only-binary=:all: --python-version 3.11`). Every container uses the host network
# (one machine here; on several hosts run the worker line on each, with the scheduler's
# address). Each worker is one grading process (--nthreads 1) with the preload that imports
# numpy and torch once and keeps the fork server; its memory limit (WORKER_MEMORY, default
# 3GiB) leaves room for the sandbox's own limits, which hold first. The scheduler regrades a
# task once after a worker death (allowed-failures 1). Then grade from the host with what it prints:
#   mlgrade grade ASSIGNMENT SUBMISSIONS --scheduler tls://127.0.0.1:PORT --tls-ca-file TLS_DIR/ca.pem \
#     --tls-cert TLS_DIR/client.pem --tls-key TLS_DIR/client-key.pem
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

TLS_DIR=${TLS_DIR:-./cluster-tls}
if [ ! -f "$TLS_DIR/ca.pem" ]; then
  ${MLGRADE:-mlgrade} certificates "$TLS_DIR" >&2
fi
TLS_DIR=$(realpath "$TLS_DIR")
for f in ca scheduler scheduler-key worker worker-key client client-key; do
  [ -f "$TLS_DIR/$f.pem" ] || { echo "cluster.sh: $TLS_DIR/$f.pem missing (make a new set: mlgrade certificates DIR)" >&2; exit 2; }
done
# a role's files, read-only, at /tls in its container, and the options that name them
tls() {
  echo "-v $TLS_DIR/ca.pem:/tls/ca.pem:ro -v $TLS_DIR/$1.pem:/tls/$1.pem:ro -v $TLS_DIR/$1-key.pem:/tls/$1-key.pem:ro"
}
tls_options() { echo "--tls-ca-file /tls/ca.pem --tls-cert /tls/$1.pem --tls-key /tls/$1-key.pem"; }

stop
address="tls://127.0.0.1:$PORT"
# shellcheck disable=SC2046  # tls/tls_options print options, split on purpose (paths have no spaces)
docker run -d --name "$PREFIX-scheduler" --label "mlgrade.cluster=$PREFIX" --network host $(tls scheduler) \
  -e DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1 -e DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0 \
  "$tag" "$VENV/bin/dask" scheduler --protocol tls --host 127.0.0.1 --port "$PORT" --dashboard-address :0 \
  $(tls_options scheduler) >/dev/null
for k in $(seq 1 "$WORKERS"); do
  # chmod: the worker user must traverse / (as run_autograder does for a debootstrap image)
  # shellcheck disable=SC2046
  docker run -d --name "$PREFIX-worker-$k" --label "mlgrade.cluster=$PREFIX" --network host $(tls worker) \
    "$tag" bash -c "chmod o+x / && exec $VENV/bin/dask worker $address --nthreads 1 --nworkers 1 \
      --memory-limit $WORKER_MEMORY --preload mlgrade.cluster --name $PREFIX-worker-$k --host 127.0.0.1 \
      --no-dashboard $(tls_options worker)" >/dev/null
done
echo "$address --tls-ca-file $TLS_DIR/ca.pem --tls-cert $TLS_DIR/client.pem --tls-key $TLS_DIR/client-key.pem"
