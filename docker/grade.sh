#!/usr/bin/env bash
# Grade submissions the way Gradescope does, in a container built from an autograder zip.
#
#   docker/grade.sh ZIP SUBMISSION_DIR [RESULTS_DIR]
#   docker/grade.sh ZIP SUBMISSION_DIR RESULTS_DIR SUBMISSION_DIR RESULTS_DIR ...
#
# Builds the image with build-image.sh (tagged by the zip's hash, so an unchanged zip reuses the
# image) and runs /autograder/run_autograder with --network none. One submission: mounted at
# /autograder/submission, its results.json copied into RESULTS_DIR (default ./results) and printed.
# Several: graded one after the other in one container (a container costs a copy of the whole
# image with the vfs storage driver), each as Gradescope grades one: /autograder/submission holding
# its files alone, an empty /autograder/results, run_autograder as root; each results.json is
# copied into its RESULTS_DIR and nothing is printed. A submission that can harm the next
# grading's container belongs last, or in a call of its own.
# Environment: BASE_IMAGE (default gradescope/autograder-base:latest), BUILD_NETWORK (e.g.
# "host", needed for a local/debian base without a bridge; also lets the build fetch the zip's
# wheelhouse from this host), GRADE_TIMEOUT (seconds for each grading, default 1800), BUILD_ONLY
# (build the image, print its tag, run nothing).
set -euo pipefail
[ $# -ge 2 ] && { [ $# -le 3 ] || [ $(( $# % 2 )) -eq 1 ]; } || {
  echo "usage: $0 ZIP SUBMISSION_DIR [RESULTS_DIR] | $0 ZIP SUBMISSION_DIR RESULTS_DIR [SUBMISSION_DIR RESULTS_DIR ...]" >&2; exit 2; }
ZIP=$(realpath "$1"); shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GRADE_TIMEOUT=${GRADE_TIMEOUT:-1800}
[ -f "$ZIP" ] || { echo "grade.sh: no zip $ZIP" >&2; exit 2; }
subs=(); outs=()
while [ $# -gt 0 ]; do
  [ -d "$1" ] || { echo "grade.sh: no submission folder $1" >&2; exit 2; }
  subs+=("$(realpath "$1")"); outs+=("${2:-./results}"); shift; [ $# -gt 0 ] && shift
done

TAG=$("$HERE/build-image.sh" "$ZIP")
# BUILD_ONLY=1: print the image's tag and stop (bench/bench_gradescope.py runs it itself)
[ -n "${BUILD_ONLY:-}" ] && { echo "$TAG"; exit 0; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
name="mlgrade-grade-$$-$RANDOM"
set +e
if [ ${#subs[@]} -eq 1 ]; then
  timeout --foreground "$GRADE_TIMEOUT" docker run --rm --name "$name" --network none \
    -v "${subs[0]}":/autograder/submission:ro -v "$out":/autograder/results "$TAG" /autograder/run_autograder >&2
  status=$?
  mkdir -p "$out/0" && { [ -f "$out/results.json" ] && mv "$out/results.json" "$out/0/"; }
else
  mounts=()
  for i in "${!subs[@]}"; do mounts+=(-v "${subs[$i]}:/mlgrade-submissions/$i:ro"); mkdir -p "$out/$i"; done
  # one grading after another, each from an emptied submission and results folder
  timeout --foreground $((GRADE_TIMEOUT * ${#subs[@]} + 60)) docker run --rm --name "$name" --network none \
    "${mounts[@]}" -v "$out":/mlgrade-results "$TAG" bash -c '
      for i in $(seq 0 $(($1 - 1))); do
        rm -rf /autograder/submission /autograder/results
        mkdir -p /autograder/submission /autograder/results
        cp -a "/mlgrade-submissions/$i/." /autograder/submission/
        timeout "$2" /autograder/run_autograder
        [ -f /autograder/results/results.json ] && cp /autograder/results/results.json "/mlgrade-results/$i/"
      done
      exit 0' grade "${#subs[@]}" "$GRADE_TIMEOUT" >&2
  status=$?
fi
set -e
[ $status -eq 124 ] && docker kill "$name" >/dev/null 2>&1
missing=0
for i in "${!subs[@]}"; do
  if [ -f "$out/$i/results.json" ]; then
    mkdir -p "${outs[$i]}"
    cp "$out/$i/results.json" "${outs[$i]}/results.json"
  else
    echo "grade.sh: no results.json for ${subs[$i]} (container exit $status)" >&2
    missing=1
  fi
done
[ $missing -eq 0 ] || exit 1
[ ${#subs[@]} -eq 1 ] && cat "${outs[0]}/results.json"
exit 0
