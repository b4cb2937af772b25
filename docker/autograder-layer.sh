#!/usr/bin/env bash
# What Gradescope's build does with an autograder zip, run by build-image.sh as root in a container
# of the shared runtime image (docker/Dockerfile.runtime), which it then commits as the
# assignment's image: one layer on the runtime.
#
#   autograder-layer.sh UNPACKED_ZIP [FIND_LINKS]
#
# The unpacked zip becomes /autograder/source (build-image.sh takes its wheelhouse/ out and serves it
# over the build's host network at FIND_LINKS, so the wheels never land in the layer; a wheelhouse
# left in is installed from and removed by setup.sh);
# setup.sh installs the engine's wheel and the assignment's extra requirements into the runtime's
# venv, creates the worker user and locks graders and reference; /autograder/run_autograder is what
# runs at grading time. Test suites shipped inside packages (torch, scipy, ...) are never imported.
set -euo pipefail
mkdir -p /autograder/source /autograder/submission /autograder/results
(cd "$1" && tar -cf - .) | tar -xf - -C /autograder/source
cp /autograder/source/run_autograder /autograder/run_autograder
chmod 755 /autograder/run_autograder
MLGRADE_FIND_LINKS="${2:-}" bash /autograder/source/setup.sh
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /root/.cache /tmp/* /var/tmp/*
find /opt/mlgrade/venv/lib -path '*/site-packages/*' -type d -name tests -prune -exec rm -rf {} +
