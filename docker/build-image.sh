#!/usr/bin/env bash
# Build (once per zip) the image of an autograder zip in Gradescope's layout; print its tag.
#
#   docker/build-image.sh ZIP
#
# Two images, in the order of their cost. The runtime (docker/Dockerfile.runtime: Python, torch and
# the engine's dependencies, from the zip's setup.sh --runtime and engine-requirements.txt) is
# tagged mlgrade-runtime:<hash of those two files, Dockerfile.runtime and the base image>: every
# assignment built from one checkout shares it, so torch is installed once. The autograder image
# (docker/Dockerfile) starts from it, tagged by the hash of the zip, the Dockerfile and the runtime's
# tag, so an unchanged zip reuses its image. Used by grade.sh (one submission) and cluster.sh.
# Environment: BASE_IMAGE (default gradescope/autograder-base:latest), BUILD_NETWORK (e.g.
# "host", needed for a local/debian base without a bridge; also lets the build fetch the zip's
# wheelhouse from this host).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 ZIP" >&2; exit 2; }
ZIP=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE_IMAGE=${BASE_IMAGE:-gradescope/autograder-base:latest}
BUILD_NETWORK=${BUILD_NETWORK:-}
[ -f "$ZIP" ] || { echo "build-image.sh: no zip $ZIP" >&2; exit 2; }
PY=$(command -v python3 || command -v python)

ctx=$(mktemp -d); server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$ctx"' EXIT
"$PY" - "$ZIP" "$ctx/runtime" <<'PYEOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], ["setup.sh", "engine-requirements.txt"])
PYEOF

runtime_hash=$( (cd "$ctx/runtime" && sha256sum setup.sh engine-requirements.txt; sha256sum "$HERE/Dockerfile.runtime" | cut -c1-64;
                 echo "$BASE_IMAGE") | sha256sum | cut -c1-16)
RUNTIME="mlgrade-runtime:$runtime_hash"
hash=$( (sha256sum "$ZIP"; sha256sum "$HERE/Dockerfile"; echo "$RUNTIME") | sha256sum | cut -c1-16)
TAG="mlgrade-autograder:$hash"

have() { docker image inspect "$1" >/dev/null 2>&1; }
have "$TAG" && { echo "$TAG"; exit 0; }
"$PY" -m zipfile -e "$ZIP" "$ctx/source"
chmod 755 "$ctx/source"/setup.sh "$ctx/source"/run_autograder

common=(); runtime_args=()
[ -n "$BUILD_NETWORK" ] && common+=(--network "$BUILD_NETWORK")
if [ -d "$ctx/source/wheelhouse" ] && [ "$BUILD_NETWORK" = host ]; then
  # served to both builds, never copied into a layer
  mv "$ctx/source/wheelhouse" "$ctx/wheelhouse"
  echo "wheelhouse" > "$ctx/.dockerignore"
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
  echo "$url" > "$ctx/source/.find-links"  # docker/Dockerfile reads it: an ARG would cost a step
fi

if ! have "$RUNTIME"; then
  echo "build-image.sh: building the shared runtime $RUNTIME on $BASE_IMAGE" >&2
  DOCKER_BUILDKIT=0 docker build -q "${common[@]}" "${runtime_args[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$RUNTIME" \
    -f "$HERE/Dockerfile.runtime" "$ctx/runtime" >&2
fi
echo "build-image.sh: building $TAG from $(basename "$ZIP") on $RUNTIME" >&2
DOCKER_BUILDKIT=0 docker build -q "${common[@]}" --build-arg "RUNTIME_IMAGE=$RUNTIME" -t "$TAG" \
  -f "$HERE/Dockerfile" "$ctx" >&2

echo "$TAG"
