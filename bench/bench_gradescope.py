"""Gradescope's default container, measured: every assignment's reference graded in the image
built from its autograder zip (docker/build-image.sh via docker/grade.sh), run with
``--cpus 0.5 --memory 768m --network none``; wall time and the container's peak memory.

    python bench/bench_gradescope.py [--cpus 0.5] [--memory 768m] [ASSIGNMENT ...]

Peak memory is the container's cgroup (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``),
read from the host while it runs; an OOM kill is Docker's own ``State.OOMKilled``. Wall is the
container's own start-to-finish (``State.StartedAt``/``FinishedAt``), which leaves out the
engine's copy of the image (the ``vfs`` driver here copies 1.5 GB per run; overlayfs does not).
Without a Docker engine, or without a wheelhouse for the zip, it says so and why.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT))

WHEELHOUSE = Path(os.environ.get("MLGRADE_WHEELHOUSE", "/var/cache/mlgrade-wheelhouse"))
BASE = os.environ.get("MLGRADE_BASE_IMAGE", "local/debian:bookworm")
PEAK_FILES = ("/sys/fs/cgroup/memory/docker/{id}/memory.max_usage_in_bytes",  # v1, cgroupfs driver
              "/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.peak",  # v2, systemd driver
              "/sys/fs/cgroup/docker/{id}/memory.peak")  # v2, cgroupfs driver


def why_skipped(ids: list[str]) -> str | None:
    if not shutil.which("docker"):
        return "no docker command on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"no Docker engine answers ({info.stderr.strip()[:200]}); ../shared/tools/docker-engine.sh starts one"
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode != 0:
        return f"base image {BASE} missing (no image can be pulled here)"
    from mlgrade.course import open_course
    from mlgrade.build import pinned_requirements

    needed = sorted({pin for aid in ids for pin in pinned_requirements(open_course(ROOT).get(aid))})
    stamp = WHEELHOUSE / ".requirements"
    if not (stamp.is_file() and set(needed) <= set(stamp.read_text().split("\n"))):
        return f"no wheelhouse for {', '.join(needed)} in {WHEELHOUSE} (tests/test_docker.py downloads it)"
    return None


def build_image(aid: str, dist: Path) -> str:
    from mlgrade.course import open_course
    from mlgrade.build import build_autograder

    zip_path = build_autograder(open_course(ROOT).get(aid), dist, wheelhouse=WHEELHOUSE)
    env = {**os.environ, "BASE_IMAGE": BASE, "BUILD_NETWORK": "host", "BUILD_ONLY": "1"}
    out = subprocess.run(["bash", str(ROOT / "docker" / "grade.sh"), str(zip_path), str(dist)],
                         capture_output=True, text=True, env=env, check=True, timeout=3600)
    return out.stdout.split()[-1]


def _peak_bytes(container_id: str) -> int | None:
    for pattern in PEAK_FILES:
        try:
            return int(Path(pattern.format(id=container_id)).read_text())
        except (OSError, ValueError):
            continue
    return None


def _seconds(stamp: str) -> float:
    # Docker's RFC 3339 with nanoseconds: keep microseconds for fromisoformat
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def run_limited(tag: str, submission: Path, cpus: str, memory: str) -> dict:
    """Grade ``submission`` in ``tag`` under the limits; wall, peak and results of the run."""
    results = Path(tempfile.mkdtemp(prefix="gs-results-"))
    name = f"mlgrade-bench-{os.getpid()}-{int(time.time())}"
    subprocess.run(["docker", "create", "--name", name, "--network", "none", "--cpus", cpus, "--memory", memory,
                    "--memory-swap", memory, "-v", f"{submission}:/autograder/submission:ro",
                    "-v", f"{results}:/autograder/results", tag, "/autograder/run_autograder"],
                   check=True, capture_output=True, timeout=1800)
    try:
        cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True,
                             check=True).stdout.strip()
        runner = subprocess.Popen(["docker", "start", "-a", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while runner.poll() is None:  # the counter is a maximum: the last read before exit holds the peak
            peak = max(peak, _peak_bytes(cid) or 0)
            time.sleep(0.1)
        state = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .State}}", name], capture_output=True,
                                          text=True, check=True).stdout)
        graded = json.loads((results / "results.json").read_text()) if (results / "results.json").is_file() else None
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return {"wall": _seconds(state["FinishedAt"]) - _seconds(state["StartedAt"]), "peak_mb": peak / 2**20,
            "oom_killed": state["OOMKilled"], "exit": state["ExitCode"], "results": graded,
            "results_dir": results}


def main() -> None:
    from mlgrade.course import open_course

    ap = argparse.ArgumentParser()
    ap.add_argument("ids", nargs="*", help="assignments (default: every one with graders)")
    ap.add_argument("--cpus", default="0.5")
    ap.add_argument("--memory", default="768m")
    args = ap.parse_args()
    ids = args.ids or [a.id for a in open_course(ROOT).assignments() if a.has_graders()]
    print(machine())
    skipped = why_skipped(ids)
    if skipped:
        print(f"skipped: {skipped}")
        return
    print(f"limits: --cpus {args.cpus} --memory {args.memory} --memory-swap {args.memory} --network none; base {BASE}")
    for aid in ids:
        a = open_course(ROOT).get(aid)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            tag = build_image(aid, Path(tmp))
            built = time.perf_counter() - start
            submission = Path(tmp) / "submission"
            submission.mkdir()
            for spec in a.files:
                name = next(n for n in spec.accept if (a.reference_dir / n).is_file())
                shutil.copy(a.reference_dir / name, submission / name)
            run = run_limited(tag, submission, args.cpus, args.memory)
            shutil.rmtree(run["results_dir"], ignore_errors=True)
        res = run["results"] or {}
        maximum = sum(t.get("max_score", 0) for t in res.get("tests", []))
        verdict = "no results.json" if not res else f"score {res.get('score', 0):g} / {maximum:g}"
        print(f"{aid}: wall {run['wall']:.1f} s (Gradescope limit 600 s), container peak {run['peak_mb']:.0f} MB "
              f"(goal <= 700), OOM killed: {'yes' if run['oom_killed'] else 'no'}, exit {run['exit']}, {verdict}; "
              f"image {tag} ({built:.0f} s to build or find)")


if __name__ == "__main__":
    main()
