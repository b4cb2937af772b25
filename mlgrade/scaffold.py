"""``mlgrade new``: a course folder, and an assignment in it that validates as made.

The assignment scaffold is a small, complete example of every part an instructor writes: the
contract (``assignment.toml``) with one function, a reference with its solution marked, a grader
with a value test in two parts (partial credit), a public check, a mutant the grader must catch,
and a correct example submission written another way. ``mlgrade validate`` passes on it as made;
replacing the function with the homework's own is the next step.
"""
from __future__ import annotations

from pathlib import Path

from mlgrade.course import ASSIGNMENT_FILE, COURSE_FILE, Course, CourseError, read_assignment, read_course

__all__ = ["new_assignment", "new_course"]

COURSE_TOML = '''\
# An mlgrade course: this file marks the course's root (commands find it from any folder below).
[course]
name = "{name}"
# what neither students nor the sandboxed worker may read; an autograder zip locks these to root
# hidden = ["graders", "reference", "tests", "data", ".git"]

# where each part lives, relative to this folder (these are the defaults); each holds <id>/ folders
# [layout]
# assignments = "assignments"        # contract (assignment.toml), public checks, helpers given to students
# reference = "reference"            # reference solutions, solution parts marked
# graders = "graders"                # hidden graders and their oracles
# template = "student_template"      # what students start from (mlgrade template <id> makes it)
# mutants = "tests/mutants"          # buggy variants the graders must catch
# alternatives = "tests/alternatives"  # correct variants the graders must accept
# examples = "examples"              # example submissions
# data = "data"                      # data the graders read
# lib = "lib"                        # modules shared by the course's assignments
'''

ASSIGNMENT_TOML = '''\
id = "{id}"
title = "{title}"
# distributions that graders, reference and public checks import beyond mlgrade's own
requires = []
# the reference files the student template is made from (mlgrade template {id})
template = ["{module}.py"]
# imports of these modules are refused in a submission (a student's own `import solution`)
reference_modules = ["solution", "reference"]

# what students submit: a .py file (a notebook is accepted too)
[[files]]
name = "{module}.py"
accept = ["{module}.py", "{module}.ipynb"]

# the contract's functions by exercise: every test's name begins with one of them
[exercises]
standardize = ["standardize"]

[limits]
call_timeout = 20
'''

REFERENCE = '''\
"""{title}

standardize(X): each column of X (n, d) shifted to mean 0 and scaled to standard deviation 1
(the population standard deviation, numpy's default ddof=0). Returns a new float array of
shape (n, d); X is not modified.
"""
import numpy as np


def standardize(X):
    """Each column of X (n, d) with mean 0 and standard deviation 1 (ddof=0); X unchanged."""
    # BEGIN SOLUTION
    X = np.asarray(X, dtype=float)
    return (X - X.mean(axis=0)) / X.std(axis=0)
    # END SOLUTION
'''

GRADER = '''\
"""standardize: hidden tests. A grader reads like the exercise: inputs, the reference, one comparison."""
from mlgrade import assert_close, assert_unchanged, check, reference, student

{module} = student("{module}")   # the submission: its calls run in the sandboxed worker
ref = reference("{module}.py")   # the reference, in the grading process


@check("standardize: values on random data, one column and four", weight=2)
def test_standardize_values(rng, parts):
    X = rng.normal(3.0, 2.0, size=(50, 4))
    with parts(0.5, "one column"):      # each part: one line, its share of the test's points
        assert_close({module}.standardize(X[:, :1]), ref.standardize(X[:, :1]))
    with parts(0.5, "four columns"):
        assert_close({module}.standardize(X), ref.standardize(X))


@check("standardize: leaves its input unchanged")
def test_standardize_input_unchanged(rng):
    X = rng.normal(size=(20, 3))
    result = {module}.standardize.call(X)  # the value, and which arguments came back modified
    assert_unchanged(result, "standardize", ["X"])
    assert_close(result.value, ref.standardize(X))  # and a value: an answer that does nothing earns nothing
'''

PUBLIC = '''\
"""Public checks of {id}: students run them with `mlgrade check {id}`; they count on Gradescope too."""
import numpy as np

from mlgrade import assert_close, check, student

{module} = student("{module}")


@check("standardize: the worked example of the sheet (public)")
def test_standardize_worked_example():
    X = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0], [7.0, 20.0]])
    expected = np.array([[-1.3416407865, -0.8164965809], [-0.4472135955, -0.8164965809],
                         [0.4472135955, 1.6329931619], [1.3416407865, 0.0]])
    assert_close({module}.standardize(X), expected)
'''

MUTANT = '''\
description = "standardize divides by the sample standard deviation (ddof=1), not the population's"
file = "{module}.py"
must_fail = ["standardize: values on random data", "standardize: the worked example"]
[[replace]]
old = "return (X - X.mean(axis=0)) / X.std(axis=0)"
new = "return (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)"
'''

EXAMPLE = '''\
"""A correct submission written another way: loops over columns, no numpy broadcasting."""
import math


def standardize(X):
    import numpy as np

    X = np.array(X, dtype=float)  # a copy: the input stays as it was
    n = X.shape[0]
    for j in range(X.shape[1]):
        mean = sum(X[:, j]) / n
        std = math.sqrt(sum((X[:, j] - mean) ** 2) / n)
        X[:, j] = (X[:, j] - mean) / std
    return X
'''


def new_course(root: Path, name: str | None = None) -> Path:
    """Make the course folder ``root`` (its course file and assignments/ folder)."""
    root = Path(root).resolve()
    if (root / COURSE_FILE).exists():
        raise CourseError(f"{root / COURSE_FILE} exists already: {root} is a course")
    (root / "assignments").mkdir(parents=True, exist_ok=True)
    (root / COURSE_FILE).write_text(COURSE_TOML.format(name=(name or root.name).replace('"', "'")))
    read_course(root)  # what we wrote reads back
    return root


def new_assignment(course: Course, assignment_id: str, title: str | None = None) -> list[Path]:
    """Write the scaffold of ``assignment_id`` into ``course`` and its student template; the files written."""
    from mlgrade import template

    public = course.folder("assignments", assignment_id)
    if public.exists():
        raise CourseError(f"{public} exists already: the course has an assignment {assignment_id!r}")
    module = assignment_id.replace("-", "_")
    if not module.isidentifier():
        raise CourseError(f"{assignment_id!r} cannot name an assignment: use letters, digits, - and _ "
                          "(its submitted file is <id>.py with - as _)")
    fmt = {"id": assignment_id, "module": module, "title": (title or assignment_id).replace('"', "'")}
    files = {
        public / ASSIGNMENT_FILE: ASSIGNMENT_TOML,
        public / "test_public.py": PUBLIC,
        course.folder("reference", assignment_id) / f"{module}.py": REFERENCE,
        course.folder("graders", assignment_id) / "test_standardize.py": GRADER,
        course.folder("mutants", assignment_id) / "standardize_sample_std.toml": MUTANT,
        course.folder("examples", assignment_id) / "loops" / f"{module}.py": EXAMPLE,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(**fmt))
    assignment = read_assignment(public / ASSIGNMENT_FILE, course)
    return [*files, *template.write(assignment)]
