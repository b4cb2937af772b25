"""The autograder zip in Gradescope's layout, in a container: docker/build-image.sh + docker/grade.sh.

Builds the image of every assignment that has graders (setup.sh at build time, from a wheelhouse
shipped in the zip) and grades its reference (full marks), its template (zero) and a hostile
submission (zero) with --network none, one after the other in one container (docker/grade.sh with
several submissions: each graded as Gradescope grades one). Needs a Docker
engine: where none answers it is skipped, except under CI (as root) where it starts one with
../shared/tools/docker-engine.sh. The wheelhouse is cached in /var/cache/mlgrade-wheelhouse and
the image is reused while the zip is unchanged.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.build import build_autograder, pinned_requirements
from conftest import file_lock

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SCRIPT = ROOT.parent / "shared" / "tools" / "docker-engine.sh"
GRADE_SH = ROOT / "docker" / "grade.sh"
WHEELHOUSE = Path(os.environ.get("MLGRADE_WHEELHOUSE", "/var/cache/mlgrade-wheelhouse"))
BASE = os.environ.get("MLGRADE_BASE_IMAGE", "local/debian:bookworm")
PYTHON_IN_IMAGE = "3.11.2"  # Debian bookworm's python3: the wheelhouse must resolve for it

HOSTILE = '''import json, os
# tries to write its own results and read the graders, then never finishes loading
for path in ("/autograder/results/results.json", "/autograder/source/results.json", "results.json"):
    try:
        with open(path, "w") as fh:
            json.dump({"score": 1000, "output": "pwned", "tests": []}, fh)
    except OSError:
        pass
for path in ("/autograder/source/reference/{id}", "/autograder/source/graders/{id}"):
    try:
        for name in os.listdir(path):
            print(open(os.path.join(path, name)).read()[:100])
    except OSError:
        pass
{ending}
'''
# how it never finishes loading, one way per assignment: one waits for the load timeout (60 s), the
# others end their worker at once
ENDINGS = ["while True:\n    pass", "os._exit(0)", "os.kill(os.getpid(), 9)", "raise SystemExit(0)"]
IDS = [a.id for a in open_course(ROOT).assignments() if a.has_graders()]
pytestmark = pytest.mark.docker


def _engine_up() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def docker_engine():
    with file_lock("/tmp/mlgrade-tests-docker-engine.lock"):  # one engine start for the run's processes
        _start_engine()


def _start_engine():
    if not _engine_up() and os.environ.get("CI") and os.geteuid() == 0 and ENGINE_SCRIPT.is_file():
        subprocess.run(["bash", str(ENGINE_SCRIPT)], check=False, timeout=900)
    if not _engine_up():
        pytest.skip(f"no Docker engine reachable: run `bash {os.path.relpath(ENGINE_SCRIPT, ROOT)}` "
                    "(../shared/tools/docker-engine.sh) as root to start one")
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode != 0:
        if os.geteuid() == 0 and ENGINE_SCRIPT.is_file():
            subprocess.run(["bash", str(ENGINE_SCRIPT)], check=False, timeout=900)
        if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode != 0:
            pytest.skip(f"base image {BASE} missing: run ../shared/tools/docker-engine.sh as root")


def _wheelhouse() -> Path:
    """pip download the pinned dependencies once (cached; a second run only checks)."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    reqs = sorted({pin for aid in IDS for pin in pinned_requirements(open_course(ROOT).get(aid))})
    stamp = WHEELHOUSE / ".requirements"
    with file_lock(WHEELHOUSE / ".lock"):
        if stamp.is_file() and stamp.read_text() == "\n".join(reqs):
            return WHEELHOUSE
        req_file = WHEELHOUSE / "requirements.in"
        req_file.write_text("\n".join(reqs) + "\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(WHEELHOUSE), "-r", str(req_file),
                        "--only-binary=:all:", "--python-version", PYTHON_IN_IMAGE], check=True, timeout=900)
        stamp.write_text("\n".join(reqs))
        return WHEELHOUSE


@pytest.fixture(scope="module", params=IDS)
def image_zip(request, docker_engine, tmp_path_factory, engine_wheel):
    a = open_course(ROOT).get(request.param)
    zip_path = build_autograder(a, tmp_path_factory.mktemp("dist"), wheelhouse=_wheelhouse(), wheel=engine_wheel)
    yield a.id, zip_path
    remove_image(zip_path)


def _grade_sh(zip_path: Path, *pairs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BASE_IMAGE": BASE, "BUILD_NETWORK": "host", "GRADE_TIMEOUT": "900"}
    run = subprocess.run(["bash", str(GRADE_SH), str(zip_path), *map(str, pairs)],
                         capture_output=True, text=True, env=env, timeout=1500 + 900 * len(pairs) // 2)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run


def grade(zip_path: Path, submission: Path, results: Path) -> tuple[dict, float]:
    """One submission in a container of its own, as `docker/grade.sh ZIP SUBMISSION RESULTS` does."""
    start = time.monotonic()
    printed = json.loads(_grade_sh(zip_path, submission, results).stdout)
    assert printed == json.loads((results / "results.json").read_text())
    return printed, time.monotonic() - start


def grade_in_turn(zip_path: Path, submissions: dict[str, Path], out: Path) -> dict[str, dict]:
    """Several submissions graded one after the other in one container (`docker/grade.sh ZIP SUB
    RESULTS SUB RESULTS ...`), each as Gradescope grades one: their results.json by name."""
    pairs = [path for name, submission in submissions.items() for path in (submission, out / name)]
    run = _grade_sh(zip_path, *pairs)
    assert run.stdout == ""
    return {name: json.loads((out / name / "results.json").read_text()) for name in submissions}


def _tag(zip_path: Path, *options: str) -> str:
    """The tag of the zip's image, built if it is not yet (with ``--print-tag``: named only)."""
    out = subprocess.run(["bash", str(ROOT / "docker" / "build-image.sh"), *options, str(zip_path)], capture_output=True,
                         text=True, check=True, env={**os.environ, "BASE_IMAGE": BASE, "BUILD_NETWORK": "host"})
    return out.stdout.split()[-1]


def remove_image(zip_path: Path) -> None:
    """Remove the zip's image once its tests are done: every test run builds a new wheel, so new zips
    whose images no later run uses, and with the vfs driver each is a 1.3 GB copy that would pile up
    run after run. The shared runtime image (torch) stays for the next run."""
    subprocess.run(["docker", "image", "rm", "-f", _tag(zip_path, "--print-tag")], capture_output=True, check=False)


def _submission(folder: Path, source: Path, files) -> Path:
    folder.mkdir()
    for spec in files:
        for name in spec.accept:
            if (source / name).is_file():
                shutil.copy(source / name, folder / name)
                break
    return folder


def test_reference_template_and_hostile_in_container(image_zip, tmp_path):
    aid, zip_path = image_zip
    a = open_course(ROOT).get(aid)
    bad = tmp_path / "hostile"  # the hostile file alone (as Python, under a name its file accepts)
    bad.mkdir()
    as_python = next((n for n in a.files[0].accept if n.endswith(".py")), a.files[0].name)
    (bad / as_python).write_text(HOSTILE.replace("{id}", aid).replace("{ending}", ENDINGS[IDS.index(aid) % len(ENDINGS)]))
    submissions = {"reference": _submission(tmp_path / "ref", a.reference_dir, a.files),
                   "template": _submission(tmp_path / "tpl", a.template_dir, a.files),
                   "hostile": bad}  # last: a grading after it would start where it left the container
    start = time.monotonic()
    named = _tag(zip_path, "--print-tag")  # what remove_image removes
    tag = _tag(zip_path)  # built here; probed in a container of its own while the gradings run
    assert tag == named
    ref_file = f"/autograder/source/reference/{aid}/{a.files[0].name}"
    grader = sorted(a.graders_dir.glob("*.py"))[0].name
    probe = subprocess.Popen(["docker", "run", "--rm", "--network", "none", tag, "bash", "-c",
                              f"stat -c '%a %U %n' /autograder/source/reference/{aid} {ref_file} "
                              f"/autograder/source/graders/{aid} /autograder/source/graders/{aid}/{grader}; "
                              "ls /autograder; test -x /autograder/run_autograder && echo run-ok; "
                              "test -d /autograder/source/wheelhouse && echo wheelhouse-left; "
                              f"setpriv --reuid=mlgrade --regid=mlgrade --clear-groups cat {ref_file} "
                              ">/dev/null 2>&1 && echo READABLE || echo denied; "
                              "/opt/mlgrade/venv/bin/python -c 'import torch; print(\"cuda\", torch.version.cuda)'"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        graded = grade_in_turn(zip_path, submissions, tmp_path / "out")
        probe_out, probe_err = probe.communicate(timeout=600)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    print(f"docker {aid}: three gradings (incl. the build if needed) in {time.monotonic() - start:.0f} s")

    res = graded["reference"]
    maximum = sum(t["max_score"] for t in res["tests"])
    assert maximum > 0 and res["score"] == maximum, [t for t in res["tests"] if t["score"] < t["max_score"]][:3]

    res = graded["template"]
    assert res["score"] == 0 and len(res["tests"]) == len(graded["reference"]["tests"])

    res = graded["hostile"]
    assert res["tests"] and res["score"] == 0, res
    assert "pwned" not in json.dumps(res)
    assert "could not be loaded" in res["output"]

    # the image: Gradescope's layout, reference and graders locked to root, no CUDA, small
    lines = probe_out.split("\n")
    assert f"700 root /autograder/source/reference/{aid}" in lines
    assert f"600 root {ref_file}" in lines
    assert f"700 root /autograder/source/graders/{aid}" in lines
    assert f"600 root /autograder/source/graders/{aid}/{grader}" in lines
    assert {"source", "submission", "results", "run_autograder", "run-ok", "denied", "cuda None"} <= set(lines), probe_out + probe_err
    assert "wheelhouse-left" not in lines and "READABLE" not in lines
    # built on the shared runtime (torch installed once for all assignments), not on the base image
    history = subprocess.run(["docker", "history", "-q", tag], capture_output=True, text=True, check=True).stdout.split()
    runtimes = subprocess.run(["docker", "image", "ls", "-q", "--no-trunc", "mlgrade-runtime"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert {r.removeprefix("sha256:")[:12] for r in runtimes} & set(history), (history, runtimes)
    size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag],
                              capture_output=True, text=True, check=True).stdout)
    print(f"image {tag}: {size / 1e9:.2f} GB")
    assert size <= 1.5e9, f"image is {size / 1e9:.2f} GB (goal <= 1.5 GB)"

