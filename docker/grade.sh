#!/usr/bin/env bash
# Grade one submission the way Gradescope does, in a container built from an autograder zip.
#
#   docker/grade.sh ZIP SUBMISSION_DIR [RESULTS_DIR]
#
# Builds the image from docker/Dockerfile with build-image.sh (tagged by the zip's hash, so an
# unchanged zip reuses the image), runs /autograder/run_autograder with --network none and the submission mounted at
# /autograder/submission, copies results.json into RESULTS_DIR (default ./results) and prints it.
# Environment: BASE_IMAGE (default gradescope/autograder-base:latest), BUILD_NETWORK (e.g.
# "host", needed for a local/debian base without a bridge; also lets the build fetch the zip's
# wheelhouse from this host), GRADE_TIMEOUT (seconds for the run, default 1800), BUILD_ONLY
# (build the image, print its tag, run nothing).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ZIP SUBMISSION_DIR [RESULTS_DIR]" >&2; exit 2; }
ZIP=$(realpath "$1"); SUB=$(realpath "$2"); RESULTS=${3:-./results}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GRADE_TIMEOUT=${GRADE_TIMEOUT:-1800}
[ -f "$ZIP" ] || { echo "grade.sh: no zip $ZIP" >&2; exit 2; }
[ -d "$SUB" ] || { echo "grade.sh: no submission folder $SUB" >&2; exit 2; }

TAG=$("$HERE/build-image.sh" "$ZIP")
# BUILD_ONLY=1: print the image's tag and stop (bench/bench_gradescope.py runs it itself)
[ -n "${BUILD_ONLY:-}" ] && { echo "$TAG"; exit 0; }

out=$(mktemp -d)
name="mlgrade-grade-$$-$RANDOM"
set +e
timeout --foreground "$GRADE_TIMEOUT" docker run --rm --name "$name" --network none \
  -v "$SUB":/autograder/submission:ro -v "$out":/autograder/results "$TAG" /autograder/run_autograder >&2
status=$?
set -e
[ $status -eq 124 ] && docker kill "$name" >/dev/null 2>&1
mkdir -p "$RESULTS"
if [ -f "$out/results.json" ]; then
  cp "$out/results.json" "$RESULTS/results.json"
  rm -rf "$out"
  cat "$RESULTS/results.json"
else
  rm -rf "$out"
  echo "grade.sh: no results.json (container exit $status)" >&2
  exit 1
fi
