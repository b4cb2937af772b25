#!/usr/bin/env bash
# Build (once per zip) the image of an autograder zip in Gradescope's layout; print its tag.
#
#   docker/build-image.sh ZIP
#
# Tagged by the hash of the zip, the Dockerfile and the base image, so an unchanged zip reuses
# the image. Used by grade.sh (one submission) and cluster.sh (a Dask cluster).
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

hash=$( (sha256sum "$ZIP"; sha256sum "$HERE/Dockerfile"; echo "$BASE_IMAGE") | sha256sum | cut -c1-16)
TAG="mlgrade-autograder:$hash"

if ! docker image inspect "$TAG" >/dev/null 2>&1; then
  ctx=$(mktemp -d); server=""
  trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$ctx"' EXIT
  "$PY" -m zipfile -e "$ZIP" "$ctx/source"
  chmod 755 "$ctx/source"/setup.sh "$ctx/source"/run_autograder
  args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$TAG" -f "$HERE/Dockerfile")
  [ -n "$BUILD_NETWORK" ] && args+=(--network "$BUILD_NETWORK")
  if [ -d "$ctx/source/wheelhouse" ] && [ "$BUILD_NETWORK" = host ]; then
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
    args+=(--build-arg "WHEELHOUSE_URL=http://127.0.0.1:$(cat "$portfile")/")
  fi
  echo "build-image.sh: building $TAG from $(basename "$ZIP") on $BASE_IMAGE" >&2
  DOCKER_BUILDKIT=0 docker build -q "${args[@]}" "$ctx" >&2
fi

echo "$TAG"
