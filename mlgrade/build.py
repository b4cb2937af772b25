"""``mlgrade build``: the Gradescope autograder zip and the student bundle.

Both are a course of one assignment (:meth:`mlgrade.course.Assignment.shipped_files`), built
from an installed mlgrade as well as from a checkout. The autograder zip (unpacked by Gradescope
into ``/autograder/source``) holds::

    setup.sh              installs Python >= 3.11, CPU-only torch and the pinned dependencies into
                          /opt/mlgrade/venv, creates the worker user, locks the course's hidden folders
    run_autograder        grades /autograder/submission into /autograder/results/results.json
    requirements.txt      every distribution the zip installs, pinned (versions of the building machine)
    engine-requirements.txt  those the engine itself needs (torch, numpy, pytest, ...): the same for
                          every assignment, so docker/build-image.sh installs them once into an image
                          all assignments' images share (``setup.sh --runtime``)
    mlgrade-*.whl         the engine the zip was built with
    mlgrade-course.toml   the course file
    assignments/<id>/     the contract, public checks and helpers
    lib/                  the course's shared modules
    graders/<id>/         hidden tests and their oracles
    reference/<id>/       the reference solution
    data/<id>/            data the graders read, if any
    wheelhouse/           optional: wheels installed with --no-index before anything is downloaded

The student bundle holds the same course of one assignment without its hidden folders, the
templates and helpers in a folder to work in, the engine's wheel, the assignment's requirements
and a README saying how to run ``mlgrade check``.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import mlgrade
from mlgrade.course import SKIPPED, Assignment
from mlgrade.dependencies import engine_requirements, pinned_closure

__all__ = ["build_autograder", "build_student", "build_wheel", "pinned_requirements",
           "function_bodies", "TORCH_INDEX"]

TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
VENV = "/opt/mlgrade/venv"
EPOCH = (1980, 1, 1, 0, 0, 0)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not SKIPPED.intersection(p.parts) and p.suffix != ".pyc")


WHEEL_FILE = "Wheel-Version: 1.0\nGenerator: mlgrade build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(out_dir: Path) -> Path:
    """The engine as installed here, as a wheel: its package files and its installed metadata.

    Works from a plain ``pip install`` as from a checkout (an editable install's package is the
    checkout's ``mlgrade/``); no build backend or network is involved. The wheel format (PEP 427)
    is a zip with a dist-info folder and a RECORD of hashes; the same files give the same bytes.
    """
    dist = importlib.metadata.distribution("mlgrade")
    package = Path(mlgrade.__file__).resolve().parent
    info = f"mlgrade-{dist.version}.dist-info"
    members = [(f"mlgrade/{p.relative_to(package).as_posix()}", p.read_bytes()) for p in _files(package)
               if not p.name.endswith(".egg-info")]
    # a checkout's mlgrade.egg-info holds the same core metadata as PKG-INFO
    members.append((f"{info}/METADATA", (dist.read_text("METADATA") or dist.read_text("PKG-INFO")).encode()))
    members.append((f"{info}/WHEEL", WHEEL_FILE.encode()))
    if dist.read_text("entry_points.txt"):
        members.append((f"{info}/entry_points.txt", dist.read_text("entry_points.txt").encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members) + f"{info}/RECORD,,\n"
    members.append((f"{info}/RECORD", record.encode()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"mlgrade-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in members:
            _write(zf, name, data)
    return target


def pinned_requirements(assignment: Assignment | None = None) -> list[str]:
    """Every distribution the engine and the assignment (``requires``) install, pinned to the
    versions installed here (torch without +cpu): an autograder zip's requirements.txt."""
    return pinned_closure([*engine_requirements(), *(assignment.requires if assignment else [])])


SETUP_SH = r"""#!/usr/bin/env bash
# mlgrade autograder setup (run once as root by Gradescope, or by docker/autograder-layer.sh).
#   setup.sh                 everything below
#   setup.sh --runtime REQS  steps 1 and 2 for the requirements file REQS only, no engine wheel
#                            (docker/Dockerfile.runtime: the image every assignment's image starts from)
#   setup.sh --lock-only     step 4 only
# The same file for every assignment: run_autograder says which one is graded.
set -euo pipefail
SRC="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
VENV={venv}
export DEBIAN_FRONTEND=noninteractive
log() {{ echo "mlgrade setup: $*"; }}

lock_down() {{
  # what student code must not read: root only (the worker runs as mlgrade)
  chown -R root:root "$SRC"
  chmod 711 "$SRC"
  for d in {hidden}; do
    [ -d "$SRC/$d" ] || continue
    find "$SRC/$d" -type d -exec chmod 700 {{}} +
    find "$SRC/$d" -type f -exec chmod 600 {{}} +
  done
  chmod 600 "$SRC"/requirements.txt "$SRC"/engine-requirements.txt "$SRC"/mlgrade-*.whl
  chmod 700 "$SRC/setup.sh" "$SRC/run_autograder"
}}
if [ "${{1:-}}" = "--lock-only" ]; then lock_down; exit 0; fi
REQS="$SRC/requirements.txt"
WHEEL=()
if [ "${{1:-}}" = "--runtime" ]; then REQS="$2"; fi

# 1. Python >= 3.11 with venv (Debian bookworm: python3; Ubuntu 22.04: python3.11 from deadsnakes)
PY=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates passwd >/dev/null
  if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PY=python3
  else
    log "system python3 is older than 3.11: installing python3.11"
    apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv >/dev/null 2>&1 || {{
      apt-get install -y -qq --no-install-recommends software-properties-common gpg-agent >/dev/null
      add-apt-repository -y ppa:deadsnakes/ppa >/dev/null
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv >/dev/null
    }}
    PY=python3.11
  fi
  rm -rf /var/lib/apt/lists/*
fi
log "using $("$PY" --version)"

# 2. the engine and its pinned dependencies in a venv; CPU-only torch
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"  # a venv made by --runtime is kept, and what it holds
PIP=("$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check -q)
[ "${{1:-}}" = "--runtime" ] || WHEEL=("$(ls "$SRC"/mlgrade-*.whl | head -1)")
if [ -d "$SRC/wheelhouse" ] && ls "$SRC"/wheelhouse/*.whl >/dev/null 2>&1; then
  log "installing from the bundled wheelhouse"
  "${{PIP[@]}}" --no-index --find-links "$SRC/wheelhouse" -r "$REQS" "${{WHEEL[@]}}"
  rm -rf "$SRC/wheelhouse"
elif [ -n "${{MLGRADE_FIND_LINKS:-}}" ]; then
  log "installing from $MLGRADE_FIND_LINKS"
  "${{PIP[@]}}" --no-index --find-links "$MLGRADE_FIND_LINKS" -r "$REQS" "${{WHEEL[@]}}"
else
  log "installing CPU-only torch from {torch_index}, then the rest from PyPI"
  "${{PIP[@]}}" "$(grep '^torch==' "$REQS")" --index-url {torch_index}
  "${{PIP[@]}}" -r "$REQS" "${{WHEEL[@]}}"
fi
if [ "${{1:-}}" = "--runtime" ]; then
  "$VENV/bin/python" -c "import torch, numpy; assert not torch.cuda.is_available()"
  log "runtime done"
  exit 0
fi
"$VENV/bin/python" -c "import torch, numpy, mlgrade; assert not torch.cuda.is_available()"

# 3. the unprivileged user that runs student code
if ! id mlgrade >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mlgrade
fi
"$VENV/bin/mlgrade" setup-worker || log "setup-worker reported a problem; checking again"
if ! out=$(cd / && setpriv --reuid="$(id -u mlgrade)" --regid="$(id -g mlgrade)" --clear-groups \
      "$VENV/bin/python" -I -c 'import numpy, torch, mlgrade.worker' 2>&1); then
  log "the worker user cannot run $VENV/bin/python with numpy, torch and mlgrade (exit $?): $out"
  exit 1
fi

# 4. lock graders, reference and data
lock_down
[ -d /autograder ] && chmod 755 /autograder || true
log "done"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# mlgrade: grade /autograder/submission for {id} into /autograder/results/results.json
set -uo pipefail
export MLGRADE_COURSE=/autograder/source  # the zip is a course of one assignment
export MLGRADE_WORKER_USER=mlgrade
RESULTS=/autograder/results/results.json
mkdir -p /autograder/results
chmod 755 /autograder/results
# the worker user must traverse / (an image made from a 0700 root, like a debootstrap import, has not)
chmod o+x / 2>/dev/null || true
rm -f "$RESULTS"
cd /autograder/source
# stdout is the grading log, which Gradescope shows to instructors only: the table, every
# failure message and pytest's log with grader tracebacks (-v)
{venv}/bin/mlgrade run {id} /autograder/submission --results "$RESULTS" -v
status=$?
echo "mlgrade run exited with status $status (0 graded, 3 no score given: engine failure)"
if [ ! -s "$RESULTS" ]; then
  # the engine itself failed before writing anything: the one schema of a grading without a score
  rm -f "$RESULTS"
  {venv}/bin/python -c 'import sys; from mlgrade.results import engine_failure, write_results; write_results(sys.argv[1], engine_failure("mlgrade run exited with status " + sys.argv[2] + " without results", 0))' "$RESULTS" "$status" \
    || echo '{{"score": 0, "output": "The autograder itself failed (the instructor has the details). No score was given.", "tests": [], "extra_data": {{"mlgrade": "engine_failure"}}}}' > "$RESULTS"
fi
exit 0
"""


def _write(zf: zipfile.ZipFile, arcname: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(arcname, date_time=EPOCH)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _add_tree(zf: zipfile.ZipFile, folder: Path, prefix: str) -> list[str]:
    names = []
    for path in _files(folder):
        arc = f"{prefix}/{path.relative_to(folder).as_posix()}"
        _write(zf, arc, path.read_bytes())
        names.append(arc)
    return names


def build_autograder(assignment: Assignment, out_dir: Path, wheelhouse: Path | None = None,
                     wheel: Path | None = None) -> Path:
    """Write ``<id>-autograder.zip`` into ``out_dir`` and return its path.

    ``wheel``: the engine's wheel, already made by :func:`build_wheel` (one for several zips);
    without it, one is made."""
    if not assignment.has_graders():
        raise FileNotFoundError(f"no graders for {assignment.id} under {assignment.graders_dir}")
    if not assignment.reference_dir.is_dir():
        raise FileNotFoundError(f"no reference for {assignment.id} under {assignment.reference_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{assignment.id}-autograder.zip"
    fmt = {"id": assignment.id, "venv": VENV, "torch_index": TORCH_INDEX,
           "hidden": " ".join(h for h in assignment.course.hidden if h != ".git")}
    with tempfile.TemporaryDirectory(prefix="mlgrade-build-") as tmp:
        wheel = wheel or build_wheel(Path(tmp))
        partial = target.with_suffix(".zip.part")
        with zipfile.ZipFile(partial, "w") as zf:
            _write(zf, "setup.sh", SETUP_SH.format(**fmt).encode(), 0o755)
            _write(zf, "run_autograder", RUN_AUTOGRADER.format(**fmt).encode(), 0o755)
            _write(zf, "requirements.txt", ("\n".join(pinned_requirements(assignment)) + "\n").encode())
            _write(zf, "engine-requirements.txt", ("\n".join(pinned_requirements()) + "\n").encode())
            _write(zf, wheel.name, wheel.read_bytes())
            for name, path in assignment.shipped_files(hidden=True):
                _write(zf, name, path.read_bytes())
            if wheelhouse:
                wheels = sorted(Path(wheelhouse).glob("*.whl"))
                if not wheels:
                    raise FileNotFoundError(f"no wheels in {wheelhouse}")
                for w in wheels:
                    info = zipfile.ZipInfo(f"wheelhouse/{w.name}", date_time=EPOCH)
                    info.external_attr = (0o100644) << 16
                    with open(w, "rb") as src, zf.open(info, "w") as dst:  # wheels are already compressed
                        shutil.copyfileobj(src, dst, 1 << 20)
        partial.replace(target)
    return target


STUDENT_README = """# {title}

Assignment id: `{id}`. Submit: {submit}.

Work in one of the two files of an "or" (the .py file or the notebook), and submit that one.
When both are there, the one you saved last is graded, and `mlgrade check` and Gradescope
say which and why: delete the other, or name the file you mean (`mlgrade check {id} {first}`).

## What is here

{listing}

## Check your work before submitting

The public checks run your functions on a few inputs with known answers, in the same sandbox the
Gradescope autograder uses. They are a subset of the grading: hidden tests on Gradescope check
more, and the public checks count toward your score there too.

```bash
python3 -m venv .venv && . .venv/bin/activate        # Python 3.11 or newer
# torch first, the CPU build (a few hundred MB; on Linux a plain `pip install torch` pulls a
# multi-GB CUDA build); skip this line if you already have torch 2.x
pip install torch --index-url {torch_index}
pip install {wheel} -r requirements.txt              # mlgrade and what this assignment needs
cd {id}                                               # the folder with your {files}
mlgrade check {id}                                    # or: mlgrade check {id} path/to/{first}
```

`mlgrade check` prints one line per public check and the failure messages; it exits 0 when
every public check passes. `mlgrade check {id} --page` also writes `{id}-selfcheck.html` (one
file, works offline; the command prints how to open it) with the sheet's figures drawn from your
own functions beside the reference's, when the assignment has figures. Only the files named above are graded; anything else you write
(plots, training loops, prints) is not run by the autograder.
"""


def build_student(assignment: Assignment, out_dir: Path, wheel: Path | None = None) -> Path:
    """Write ``<id>-student.zip`` into ``out_dir`` and return its path (``wheel``: as for
    :func:`build_autograder`)."""
    if not assignment.template_dir.is_dir():
        raise FileNotFoundError(f"no student template for {assignment.id} under {assignment.template_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{assignment.id}-student.zip"
    top = assignment.id
    with tempfile.TemporaryDirectory(prefix="mlgrade-build-") as tmp:
        wheel = wheel or build_wheel(Path(tmp))
        listing = []
        with zipfile.ZipFile(target.with_suffix(".zip.part"), "w") as zf:
            for name in _add_tree(zf, assignment.template_dir, f"{top}/{top}"):
                listing.append(f"- `{name.removeprefix(top + '/')}`: template")
            for helper in assignment.helpers:  # the copies the autograder loads too
                _write(zf, f"{top}/{top}/{helper}", assignment.helper_path(helper).read_bytes())
                listing.append(f"- `{top}/{helper}`: given with the sheet (keep it next to your work)")
            for name, path in assignment.shipped_files(hidden=False):
                _write(zf, f"{top}/{name}", path.read_bytes())
            listing.append(f"- `mlgrade-course.toml`, `{assignment.public_dir.relative_to(assignment.course.root)}/`: "
                           "the contract and the public checks `mlgrade check` runs (for reading, too)")
            _write(zf, f"{top}/requirements.txt", "".join(f"{r}\n" for r in assignment.requires).encode())
            _write(zf, f"{top}/{wheel.name}", wheel.read_bytes())
            listing.append(f"- `{wheel.name}`: the mlgrade engine; `requirements.txt`: what this assignment needs")
            files = " and ".join(" or ".join(f"`{a}`" for a in f.accept) for f in assignment.files)
            readme = STUDENT_README.format(title=assignment.title, id=assignment.id, submit=files,
                                           listing="\n".join(listing), wheel=wheel.name, files=files,
                                           torch_index=TORCH_INDEX, first=assignment.files[0].name)
            _write(zf, f"{top}/README.md", readme.encode())
        target.with_suffix(".zip.part").replace(target)
    return target


# --- checking that nothing of the reference leaks -------------------------------------------

def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def notebook_source(text: str) -> str:
    """The code cells of a notebook as one module (IPython magics and shell lines dropped)."""
    cells = json.loads(text).get("cells", [])
    out = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            src = "".join(cell.get("source", []))
            out.append("\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))))
    return "\n\n".join(out)


def function_bodies(source: str, min_nodes: int = 12) -> dict[str, str]:
    """``ast.dump`` of every function body (docstring dropped) keyed by that dump -> qualified name.

    Bodies with fewer than ``min_nodes`` AST nodes (``return x``, ``super().__init__()``) are
    left out: they say nothing about a solution and occur everywhere.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = _strip_docstring(node.body)
            if not body:
                continue
            module = ast.Module(body=body, type_ignores=[])
            if sum(1 for _ in ast.walk(module)) < min_nodes:
                continue
            found[ast.dump(module)] = node.name
    return found
