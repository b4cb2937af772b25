"""An instructor of another course, literally as the README's "Your own course" says: a fresh venv
under /tmp with the built mlgrade wheel alone (no checkout, nothing editable), `mlgrade new` a course
and an assignment outside the repository, a small numpy homework written into it (reference,
graders with partial credit, a public check, a mutant), `mlgrade validate` all good, `mlgrade
build`, a correct, a partial and a wrong submission graded from that zip in Docker, and `mlgrade
build --student` with a self-check from the bundle in another fresh venv. Nothing of the installed
package is edited."""
from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import fresh_venv
from mlgrade.build import build_wheel, pinned_requirements
from test_docker import _wheelhouse, docker_engine, grade as grade_in_docker, grade_in_turn, remove_image  # noqa: F401  (a fixture)

CONTRACT = '''id = "ridge"
title = "Homework 3: ridge regression and the logistic loss"
requires = []
template = ["ridge.py"]
reference_modules = ["solution"]

[[files]]
name = "ridge.py"
accept = ["ridge.py", "ridge.ipynb"]

[exercises]
ridge = ["ridge_fit", "ridge_predict"]
logistic = ["logistic_loss_grad"]
'''
REFERENCE = '''"""Homework 3. X is (n, d) float64, y is (n,); every function returns float64 arrays."""
import numpy as np


def ridge_fit(X, y, lam):
    """The w of shape (d,) minimising ||X w - y||^2 + lam ||w||^2."""
    # BEGIN SOLUTION
    return np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ y)
    # END SOLUTION


def ridge_predict(X, w):
    """The predictions X w, shape (n,)."""
    # BEGIN SOLUTION
    return X @ w
    # END SOLUTION


def logistic_loss_grad(w, X, y):
    """(mean logistic loss of labels y in {0, 1} under p = sigmoid(X w), its gradient in w)."""
    # BEGIN SOLUTION
    p = 1.0 / (1.0 + np.exp(-(X @ w)))
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return loss, X.T @ (p - y) / len(y)
    # END SOLUTION
'''
GRADER = '''from mlgrade import assert_close, check, reference, student
from mlgrade.compare import unpack

ridge = student("ridge")
ref = reference("ridge.py")


@check("ridge_fit: two regularisations", weight=4)
def test_ridge_fit(rng, parts):
    X, y = rng.normal(size=(40, 5)), rng.normal(size=40)
    with parts(0.5, "lam = 0.1"):
        assert_close(ridge.ridge_fit(X, y, 0.1), ref.ridge_fit(X, y, 0.1))
    with parts(0.5, "lam = 10"):
        assert_close(ridge.ridge_fit(X, y, 10.0), ref.ridge_fit(X, y, 10.0))


@check("ridge_predict: values", weight=2)
def test_ridge_predict(rng):
    X, w = rng.normal(size=(30, 4)), rng.normal(size=4)
    assert_close(ridge.ridge_predict(X, w), ref.ridge_predict(X, w))


@check("logistic_loss_grad: the loss and its gradient", weight=4)
def test_logistic_loss_grad(rng, parts):
    X, w, y = rng.normal(size=(50, 3)), rng.normal(size=3), (rng.random(50) < 0.5).astype(float)
    loss, grad = unpack(ridge.logistic_loss_grad(w, X, y), 2, name="logistic_loss_grad(w, X, y)")
    want_loss, want_grad = ref.logistic_loss_grad(w, X, y)
    with parts(0.5, "the loss"):
        assert_close(loss, want_loss, name="loss")
    with parts(0.5, "the gradient"):
        assert_close(grad, want_grad, name="gradient")
'''
PUBLIC = '''import numpy as np

from mlgrade import assert_close, check, student

ridge = student("ridge")


@check("ridge_predict: the sheet's example (public)")
def test_ridge_predict_example():
    assert_close(ridge.ridge_predict(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, 1.0])), np.array([3.0, 7.0]))
'''
MUTANT = '''description = "ridge_fit forgets the regularisation"
file = "ridge.py"
must_fail = ["ridge_fit: two regularisations"]
[[replace]]
old = "np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ y)"
new = "np.linalg.solve(X.T @ X, X.T @ y)"
'''
CORRECT = '''import numpy as np


def ridge_fit(X, y, lam):  # least squares on the augmented system, another right way
    d = X.shape[1]
    return np.linalg.lstsq(np.vstack([X, np.sqrt(lam) * np.eye(d)]), np.concatenate([y, np.zeros(d)]), rcond=None)[0]


def ridge_predict(X, w):
    return np.einsum("nd,d->n", X, w)


def logistic_loss_grad(w, X, y):
    z = X @ w
    loss = np.mean(np.logaddexp(0, z) - y * z)
    return loss, X.T @ (1 / (1 + np.exp(-z)) - y) / len(y)
'''
PARTIAL = CORRECT.replace("return loss, X.T @ (1 / (1 + np.exp(-z)) - y) / len(y)",
                          "return loss, X.T @ (y - 1 / (1 + np.exp(-z))) / len(y)  # the sign is flipped")
WRONG = '''import numpy as np


def ridge_fit(X, y, lam):
    return np.zeros(X.shape[1])


def ridge_predict(X, w):
    return X @ w


def logistic_loss_grad(w, X, y):
    raise NotImplementedError
'''
MAXIMUM = 4 + 2 + 4 + 1  # graders and the public check


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _fresh_venv(folder: Path, torch_venv: Path, *packages: str) -> Path:
    """A venv that sees nothing of this machine's packages: torch's CPU build first, as the README says
    (installed once per session: :func:`conftest.fresh_venv`), then ``packages``.

    The versions are those installed here (a constraints file, not requirements): the zip it builds
    then pins what the suite's Docker wheelhouse and runtime image already hold."""
    bin_dir = fresh_venv(folder, torch_venv)
    constraints = folder / "constraints.txt"
    constraints.write_text("\n".join(pinned_requirements()) + "\n")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "-c", str(constraints)]
    subprocess.run([*pip, *packages], check=True, timeout=1200)
    return bin_dir


def _run(bin_dir: Path, *args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLGRADE_", "PYTHON"))}
    run = subprocess.run([str(bin_dir / "mlgrade"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=1200)
    if ok:
        assert run.returncode == 0, f"mlgrade {' '.join(args)}:\n{run.stdout[-4000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def instructor(tmp_path_factory, torch_venv):
    """(the venv's bin, the course folder, the installed package's digest) after the README's steps."""
    base = tmp_path_factory.mktemp("own-course")
    assert str(base).startswith(("/tmp/", "/var/tmp/")) or os.environ.get("TMPDIR"), base
    wheel = build_wheel(base / "wheel")
    bin_dir = _fresh_venv(base / "venv", torch_venv, str(wheel))
    site = Path(subprocess.run([str(bin_dir / "python"), "-c", "import mlgrade, os; print(os.path.dirname(mlgrade.__file__))"],
                               capture_output=True, text=True, check=True, cwd=base).stdout.strip())
    assert site.is_relative_to(base), site  # the wheel's copy, not this checkout
    installed = _digest(site)
    _run(bin_dir, "new", "course", "intro-ml", "--title", "Intro to ML", cwd=base)
    course = base / "intro-ml"
    _run(bin_dir, "new", "assignment", "ridge", cwd=course)
    # the instructor's own homework replaces the scaffold's function
    (course / "assignments" / "ridge" / "assignment.toml").write_text(CONTRACT)
    (course / "assignments" / "ridge" / "test_public.py").write_text(PUBLIC)
    for old in ("reference/ridge/ridge.py", "graders/ridge/test_standardize.py",
                "tests/mutants/ridge/standardize_sample_std.toml", "student_template/ridge/ridge.py"):
        (course / old).unlink(missing_ok=True)
    (course / "reference" / "ridge" / "ridge.py").write_text(REFERENCE)
    (course / "graders" / "ridge" / "test_ridge.py").write_text(GRADER)
    (course / "tests" / "mutants" / "ridge" / "ridge_no_regularisation.toml").write_text(MUTANT)
    (course / "examples" / "ridge" / "loops" / "ridge.py").write_text(CORRECT)
    _run(bin_dir, "template", "ridge", cwd=course)
    yield bin_dir, course, site
    assert _digest(site) == installed, "the installed mlgrade package was changed"


def test_the_instructors_course_validates(instructor):
    bin_dir, course, _ = instructor
    run = _run(bin_dir, "validate", "ridge", cwd=course / "graders")  # any folder of the course
    assert "all good" in run.stdout
    assert "mutant ridge_no_regularisation" in run.stdout and "reference:11/11" in run.stdout.replace(" ", "")


@pytest.fixture(scope="module")
def autograder_zip(instructor, docker_engine):  # noqa: F811
    bin_dir, course, _ = instructor
    _run(bin_dir, "build", "ridge", "-o", str(course / "dist"), "--wheelhouse", str(_wheelhouse()), cwd=course)
    zip_path = course / "dist" / "ridge-autograder.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        pins = zf.read("requirements.txt").decode().split()
    assert "graders/ridge/test_ridge.py" in names and "assignments/ridge/assignment.toml" in names
    assert all("==" in p for p in pins) and not [p for p in pins if p.startswith(("scikit-learn", "cvxopt", "pip=="))]
    yield zip_path
    remove_image(zip_path)


SUBMISSIONS = {"correct": CORRECT, "partial": PARTIAL, "wrong": WRONG}


@pytest.fixture(scope="module")
def graded_in_docker(autograder_zip, tmp_path_factory) -> dict[str, dict]:
    """The three submissions' results.json from the zip in Docker: the correct and the partial one
    graded in turn in one container, the wrong one alone (`docker/grade.sh ZIP SUBMISSION`)."""
    folder = tmp_path_factory.mktemp("docker-submissions")
    for name, source in SUBMISSIONS.items():
        (folder / name).mkdir()
        (folder / name / "ridge.py").write_text(source)
    graded = grade_in_turn(autograder_zip, {name: folder / name for name in ("correct", "partial")}, folder / "out")
    graded["wrong"], _ = grade_in_docker(autograder_zip, folder / "wrong", folder / "out" / "wrong")
    return graded


@pytest.mark.parametrize("name, expected", [("correct", "full"), ("partial", "partial"), ("wrong", "low")])
def test_the_zip_grades_in_docker(graded_in_docker, name, expected):
    results = graded_in_docker[name]
    assert sum(t["max_score"] for t in results["tests"]) == MAXIMUM
    score = results["score"]
    if expected == "full":
        assert score == MAXIMUM
    elif expected == "partial":  # ridge and the public check right, the loss right, the gradient wrong
        assert score == MAXIMUM - 2
        (logistic,) = [t for t in results["tests"] if t["name"].startswith("logistic_loss_grad")]
        assert logistic["score"] == 2 and logistic["output"].startswith("the gradient (half of the points): ")
    else:
        assert score <= 3, results  # ridge_predict alone, the public check


def test_a_student_self_checks_from_the_bundle_in_a_fresh_venv(instructor, tmp_path_factory, torch_venv):
    bin_dir, course, _ = instructor
    _run(bin_dir, "build", "ridge", "--student", "-o", str(course / "dist"), cwd=course)
    home = tmp_path_factory.mktemp("student")
    with zipfile.ZipFile(course / "dist" / "ridge-student.zip") as zf:
        zf.extractall(home)
        assert not [n for n in zf.namelist() if "graders/" in n or "reference/" in n or "mutants" in n]
    bundle = home / "ridge"
    readme = (bundle / "README.md").read_text()
    assert "pip install mlgrade-" in readme and "-r requirements.txt" in readme
    (wheel,) = bundle.glob("mlgrade-*.whl")
    student_bin = _fresh_venv(home / "venv", torch_venv, str(wheel), "-r", str(bundle / "requirements.txt"))
    work = bundle / "ridge"
    template = _run(student_bin, "check", "ridge", cwd=work, ok=False)
    assert template.returncode == 1 and "Score: 0 / 1" in template.stdout, template.stdout[-3000:]
    (work / "ridge.py").write_text(CORRECT)
    done = _run(student_bin, "check", "ridge", cwd=work)
    assert "Score: 1 / 1" in done.stdout
