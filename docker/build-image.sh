#!/usr/bin/env bash
# Build (once per zip) the image of an autograder zip in Gradescope's layout; print its tag.
#
#   docker/build-image.sh ZIP
#   docker/build-image.sh --print-tag ZIP   (the tag only, built or not: e.g. to remove the image)
#
# Two images, in the order of their cost. The runtime (docker/Dockerfile.runtime: Python, torch and
# the engine's dependencies, from the zip's setup.sh --runtime and engine-requirements.txt) is
# tagged mlgrade-runtime:<hash of those two files, Dockerfile.runtime and the base image>: every
# assignment built from one checkout shares it, so torch is installed once. The autograder image
# adds one layer to it, what Gradescope's build does with the zip (docker/autograder-layer.sh in a
# container of the runtime, committed): the zip unpacked into /autograder/source, its setup.sh run
# (the engine's wheel and the assignment's extra requirements into the runtime's venv, the worker
# user, graders and reference locked). It is tagged by the hash of the zip, autograder-layer.sh and
# the runtime's tag, so an unchanged zip reuses its image. One layer, not a Dockerfile's steps: with
# the vfs storage driver every step copies the whole image (1.3 GB) twice. Used by grade.sh and
# cluster.sh.
# Environment: BASE_IMAGE (default gradescope/autograder-base:latest), BUILD_NETWORK (e.g.
# "host", needed for a local/debian base without a bridge; also lets the build fetch the zip's
# wheelhouse from this host).
set -euo pipefail
print_tag=""
[ "${1:-}" = --print-tag ] && { print_tag=1; shift; }
[ $# -ge 1 ] || { echo "usage: $0 [--print-tag] ZIP" >&2; exit 2; }
ZIP=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE_IMAGE=${BASE_IMAGE:-gradescope/autograder-base:latest}
BUILD_NETWORK=${BUILD_NETWORK:-}
[ -f "$ZIP" ] || { echo "build-image.sh: no zip $ZIP" >&2; exit 2; }
PY=$(command -v python3 || command -v python)

ctx=$(mktemp -d); server=""; cid=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1; rm -rf "$ctx"' EXIT
"$PY" - "$ZIP" "$ctx/runtime" <<'PYEOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], ["setup.sh", "engine-requirements.txt"])
PYEOF

runtime_hash=$( (cd "$ctx/runtime" && sha256sum setup.sh engine-requirements.txt; sha256sum "$HERE/Dockerfile.runtime" | cut -c1-64;
                 echo "$BASE_IMAGE") | sha256sum | cut -c1-16)
RUNTIME="mlgrade-runtime:$runtime_hash"
hash=$( (sha256sum "$ZIP"; sha256sum "$HERE/autograder-layer.sh"; echo "$RUNTIME") | sha256sum | cut -c1-16)
TAG="mlgrade-autograder:$hash"
[ -n "$print_tag" ] && { echo "$TAG"; exit 0; }

have() { docker image inspect "$1" >/dev/null 2>&1; }
have "$TAG" && { echo "$TAG"; exit 0; }
# two builds at once (a test suite in several processes, a cluster and a grading) build each image
# once: the second waits for the first and finds its image
exec 8>"/tmp/mlgrade-image-$hash.lock"; flock 8
have "$TAG" && { echo "$TAG"; exit 0; }
"$PY" -m zipfile -e "$ZIP" "$ctx/source"
chmod 755 "$ctx/source"/setup.sh "$ctx/source"/run_autograder

common=(); runtime_args=(); find_links=""
[ -n "$BUILD_NETWORK" ] && common+=(--network "$BUILD_NETWORK")
if [ -d "$ctx/source/wheelhouse" ] && [ "$BUILD_NETWORK" = host ]; then
  # served to both builds, never copied into a layer
  mv "$ctx/source/wheelhouse" "$ctx/wheelhouse"
  portfile="$ctx/port"
  "$PY" - "$ctx/wheelhouse" "$portfile" <<'PYEOF' &
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = functools.partial(Quiet, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
open(sys.argv[2] + ".tmp", "w").write(str(srv.server_address[1]))
import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
srv.serve_forever()
PYEOF
  server=$!
  for _ in $(seq 50); do [ -s "$portfile" ] && break; sleep 0.1; done
  url="http://127.0.0.1:$(cat "$portfile")/"
  runtime_args=(--build-arg "WHEELHOUSE_URL=$url")
  find_links="$url"
fi

exec 9>"/tmp/mlgrade-runtime-$runtime_hash.lock"; flock 9
if ! have "$RUNTIME"; then
  echo "build-image.sh: building the shared runtime $RUNTIME on $BASE_IMAGE" >&2
  DOCKER_BUILDKIT=0 docker build -q "${common[@]}" "${runtime_args[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$RUNTIME" \
    -f "$HERE/Dockerfile.runtime" "$ctx/runtime" >&2
fi
exec 9>&-
echo "build-image.sh: building $TAG from $(basename "$ZIP") on $RUNTIME" >&2
chmod 755 "$ctx"
cid=$(docker create "${common[@]}" -v "$ctx/source:/mlgrade-zip:ro" -v "$HERE/autograder-layer.sh:/mlgrade-layer.sh:ro" \
        "$RUNTIME" bash /mlgrade-layer.sh /mlgrade-zip "$find_links")
docker start -a "$cid" >&2 || { echo "build-image.sh: the zip's setup failed (above)" >&2; exit 1; }
docker commit --change 'WORKDIR /autograder' --change 'CMD ["/autograder/run_autograder"]' "$cid" "$TAG" >/dev/null
docker rm "$cid" >/dev/null; cid=""
echo "$TAG"
