"""A course: a folder with ``mlgrade-course.toml`` at its root, and every path of its assignments.

Found as pytest finds its rootdir: ``--course DIR``, else ``$MLGRADE_COURSE``, else the first folder
from the current one upward that holds the course file. Every path of an assignment is derived
here, from the course root and the course's layout (as nbgrader's ``CourseDirectory`` does);
commands never compute one themselves. The engine names no assignment: everything it grades is
read from a course.

A course folder (the default layout; ``[layout]`` in the course file may move any of them)::

    mlgrade-course.toml         name, layout, what is hidden
    assignments/<id>/           the contract (assignment.toml), public checks (test_public*.py),
                                files given to students (utils.py), what public checks import,
                                the self-check's figures (selfcheck.py) and the reference's images
                                of them (selfcheck/*.png)
    lib/                        modules shared by the course's assignments (helpers found here too)
    reference/<id>/             reference solutions                        (hidden)
    graders/<id>/               hidden graders and their oracles           (hidden)
    student_template/<id>/      what students start from
    tests/mutants/<id>/         buggy variants every grader must catch      (hidden)
    tests/alternatives/<id>/    correct variants every grader must accept  (hidden)
    examples/<id>/              example submissions
    data/<id>/                  data the graders read                      (hidden)

Graders and public checks import the assignment's own modules as one package named after the
assignment (``package`` in assignment.toml, by default the id with ``-`` as ``_``): ``from hw_1
import worked_examples`` finds ``assignments/hw-1/worked_examples.py``, ``graders/hw-1/...`` (only
where the graders are) or ``lib/...``.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import keyword
import os
import sys
import tomllib
import types
from dataclasses import dataclass, field, fields
from pathlib import Path

from mlgrade.limits import Limits
from mlgrade.loading import ModuleSource, load_file

__all__ = ["Assignment", "Course", "CourseError", "FileSpec", "UnknownAssignment", "COURSE_FILE", "COURSE_ENV",
           "find_course", "open_course"]

COURSE_FILE = "mlgrade-course.toml"
COURSE_ENV = "MLGRADE_COURSE"
ASSIGNMENT_FILE = "assignment.toml"
# kind of folder -> where it is, relative to the course root; each holds one folder per assignment id
LAYOUT = {"assignments": "assignments", "reference": "reference", "graders": "graders",
          "template": "student_template", "mutants": "tests/mutants", "alternatives": "tests/alternatives",
          "examples": "examples", "data": "data", "lib": "lib"}
# what neither students (the student bundle) nor the worker (the sandbox's view) may read, and what
# an autograder zip locks to root; relative to the course root
HIDDEN = ("graders", "reference", "tests", "data", ".git")
SKIPPED = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}  # never shipped

MSG_NOT_FOUND = ("no mlgrade course here: no {file} in {start} or above it. Give one with --course DIR or "
                 "${env}, or make one with `mlgrade new course DIR`")
MSG_KEY = "{file}: {key}: expected {expected}, found {found!r}"
MSG_UNKNOWN_KEYS = "{file}: unknown key(s) {keys} (known: {known})"
MSG_MISSING = "{file}: {key} is required ({expected})"


class CourseError(ValueError):
    """A course file or an assignment.toml that cannot be read; the message names file and key."""


class UnknownAssignment(LookupError):
    pass


@dataclass(frozen=True)
class FileSpec:
    name: str
    accept: tuple[str, ...]


@dataclass
class Assignment:
    id: str
    title: str
    files: list[FileSpec]
    exercises: dict[str, list[str]]
    limits: Limits
    reference_modules: set[str]
    course: Course
    package: str  # the import name of the assignment's own modules (graders: ``from <package> import x``)
    requires: list[str] = field(default_factory=list)  # distributions its graders, reference and checks import
    template_sources: list[str] = field(default_factory=list)  # reference files the template is made from
    # student notebooks made from a reference .py in jupytext's percent format: {notebook: source}
    template_notebooks: dict[str, str] = field(default_factory=dict)
    helpers: list[str] = field(default_factory=list)  # files given to students (utils.py), loaded before a submission

    def _folder(self, kind: str) -> Path:
        return self.course.folder(kind, self.id)

    @property
    def public_dir(self) -> Path:
        """The contract, the public checks and what they import."""
        return self._folder("assignments")

    @property
    def graders_dir(self) -> Path:
        return self._folder("graders")

    @property
    def reference_dir(self) -> Path:
        return self._folder("reference")

    @property
    def template_dir(self) -> Path:
        return self._folder("template")

    @property
    def mutants_dir(self) -> Path:
        return self._folder("mutants")

    @property
    def alternatives_dir(self) -> Path:
        return self._folder("alternatives")

    @property
    def examples_dir(self) -> Path:
        return self._folder("examples")

    @property
    def data_dir(self) -> Path:
        return self._folder("data")

    @property
    def selfcheck_file(self) -> Path:
        """The figures of the self-check page (optional; :mod:`mlgrade.figures`)."""
        return self.public_dir / "selfcheck.py"

    @property
    def selfcheck_images(self) -> Path:
        """The reference's figures as PNG images, shipped to students beside their declarations."""
        return self.public_dir / "selfcheck"

    def public_tests(self) -> list[Path]:
        return sorted(self.public_dir.glob("test_public*.py"))

    def has_graders(self) -> bool:
        return self.graders_dir.is_dir()

    def helper_path(self, name: str) -> Path:
        """A file given to students: in the assignment's folder, else in the course's ``lib/``."""
        for folder in (self.public_dir, self.course.folder("lib")):
            if (folder / name).is_file():
                return folder / name
        raise FileNotFoundError(f"{self.public_dir / ASSIGNMENT_FILE}: helpers: {name} is neither in "
                                f"{self.public_dir} nor in {self.course.folder('lib')}")

    def load_submission(self, submission_dir: Path) -> list[ModuleSource]:
        """The helpers given with the sheet (loaded first: the submission's ``import utils`` finds
        them, never a submitted file of that name), then the contract's files."""
        given = [self.helper_module(name) for name in self.helpers]
        return given + [load_file(Path(submission_dir), list(f.accept), self.reference_modules) for f in self.files]

    def helper_module(self, name: str) -> ModuleSource:
        """The helper ``name`` (``utils.py``) as a worker module of its stem."""
        source = self.helper_path(name).read_text()
        return ModuleSource(name=Path(name).stem, file=name, chunks=[(f"{name} (given with the sheet)", source)])

    def protected_paths(self) -> list[str]:
        """What a worker must not see: the course's hidden folders (hidden tests, reference, mutants, data)."""
        return [str(p) for p in self.course.hidden_paths()]

    def shipped_files(self, hidden: bool) -> list[tuple[str, Path]]:
        """What grading this assignment reads, as (path relative to the course root, file): the course
        file, the contract with its public checks and helpers, the course's ``lib/``; with ``hidden``
        also its graders, reference and data. An autograder zip, a cluster bundle (``hidden``) and a
        student bundle (not) carry exactly these, at these paths: each is a course of one assignment."""
        kinds = ["assignments", "lib", *(["graders", "reference", "data"] if hidden else [])]
        found = [(COURSE_FILE, self.course.root / COURSE_FILE)]
        for kind in kinds:
            folder = self.course.folder(kind) if kind == "lib" else self._folder(kind)
            # where it goes: its place in the course (a folder the layout puts outside the root
            # goes where the default layout has it)
            place = folder.relative_to(self.course.root) if folder.is_relative_to(self.course.root) else \
                Path(LAYOUT[kind], *([] if kind == "lib" else [self.id]))
            found += [((place / p.relative_to(folder)).as_posix(), p) for p in sorted(folder.rglob("*"))
                      if p.is_file() and not SKIPPED.intersection(p.parts) and p.suffix != ".pyc"] if folder.is_dir() else []
        return found

    def code_folders(self) -> list[Path]:
        """Where ``import <package>.x`` looks: the public folder, the graders (where present), the course lib."""
        return [p for p in (self.public_dir, self.graders_dir, self.course.folder("lib")) if p.is_dir()]

    @contextlib.contextmanager
    def importable(self):
        """While graders and public checks run in this (the grading) process: ``<package>`` and
        the helpers by name (``import utils``), as a student's notebook beside them imports them.

        Entered where graders are about to be imported, never before the fork server is taken:
        nothing of the graders may be in the memory a worker is forked from.
        """
        self.import_package()
        finder = _GivenModules({Path(name).stem: self.helper_path(name) for name in self.helpers})
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)
            for name in finder.files:
                if getattr(sys.modules.get(name), "__file__", None) == str(finder.files[name]):
                    del sys.modules[name]

    def import_package(self) -> types.ModuleType:
        """Make ``<package>`` importable in this process, fresh for this course."""
        path = [str(p) for p in self.code_folders()]
        current = sys.modules.get(self.package)
        if current is not None and list(getattr(current, "__path__", [])) == path:
            return current
        for name in [n for n in sys.modules if n == self.package or n.startswith(self.package + ".")]:
            del sys.modules[name]  # another course's assignment of the same package name
        spec = importlib.machinery.ModuleSpec(self.package, None, is_package=True)
        spec.submodule_search_locations = path
        module = importlib.util.module_from_spec(spec)
        module.__doc__ = f"The modules of the assignment {self.id} (course {self.course.name})."
        sys.modules[self.package] = module
        importlib.invalidate_caches()
        return module


class _GivenModules(importlib.abc.MetaPathFinder):
    """Finds exactly the helpers of one assignment by their names, nothing else."""

    def __init__(self, files: dict[str, Path]):
        self.files = files

    def find_spec(self, name, path=None, target=None):
        file = self.files.get(name) if path is None else None
        return importlib.util.spec_from_file_location(name, file) if file else None


@dataclass(frozen=True)
class Course:
    root: Path
    name: str
    layout: dict[str, str]
    hidden: tuple[str, ...]

    def folder(self, kind: str, assignment_id: str | None = None) -> Path:
        base = self.root / self.layout[kind]
        return base / assignment_id if assignment_id else base

    def hidden_paths(self) -> list[Path]:
        return [self.root / p for p in self.hidden if (self.root / p).exists()]

    def assignments(self) -> list[Assignment]:
        base = self.folder("assignments")
        found = [read_assignment(d / ASSIGNMENT_FILE, self) for d in sorted(base.iterdir())
                 if (d / ASSIGNMENT_FILE).is_file()] if base.is_dir() else []
        return found

    def get(self, assignment_id: str) -> Assignment:
        path = self.folder("assignments", assignment_id) / ASSIGNMENT_FILE
        if path.is_file():
            return read_assignment(path, self)
        known = ", ".join(a.id for a in self.assignments()) or "none yet"
        raise UnknownAssignment(f"unknown assignment {assignment_id!r} in the course {self.name} at {self.root} "
                                f"(its assignments: {known})")


# --- reading and checking the toml files ------------------------------------------------------

def _expect(file: Path, key: str, value, kind, expected: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CourseError(MSG_KEY.format(file=file, key=key, expected=expected, found=value))
    return value


def _strings(file: Path, key: str, value) -> list[str]:
    _expect(file, key, value, list, "a list of strings")
    for item in value:
        _expect(file, key, item, str, "a list of strings")
    return list(value)


def _known(file: Path, table: dict, known: set[str], where: str = "") -> None:
    unknown = set(table) - known
    if unknown:
        raise CourseError(MSG_UNKNOWN_KEYS.format(file=file, keys=", ".join(f"{where}{k}" for k in sorted(unknown)),
                                                  known=", ".join(sorted(known))))


def _toml(file: Path) -> dict:
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CourseError(f"{file}: not valid TOML ({exc})") from None


ASSIGNMENT_KEYS = {"id", "title", "package", "reference_modules", "requires", "template", "template_notebooks",
                   "helpers", "files", "exercises", "limits"}


def read_assignment(file: Path, course: Course) -> Assignment:
    """Read and check one ``assignment.toml``; every problem names the file and the key."""
    data = _toml(file)
    _known(file, data, ASSIGNMENT_KEYS)
    for key, expected in (("id", "the assignment's id, the name of its folder"), ("title", "a one-line title"),
                          ("files", "[[files]] tables, one per file a student submits")):
        if key not in data:
            raise CourseError(MSG_MISSING.format(file=file, key=key, expected=expected))
    assignment_id = _expect(file, "id", data["id"], str, "a string")
    if assignment_id != file.parent.name:
        raise CourseError(MSG_KEY.format(file=file, key="id", expected=f"the folder's name {file.parent.name!r}",
                                         found=assignment_id))
    package = _expect(file, "package", data.get("package", assignment_id.replace("-", "_")), str, "a string")
    if not package.isidentifier() or keyword.iskeyword(package):
        raise CourseError(MSG_KEY.format(file=file, key="package", expected="a Python identifier (set `package = "
                                         "\"...\"` when the id is not one with - as _)", found=package))
    files = []
    for index, spec in enumerate(_expect(file, "files", data["files"], list, "[[files]] tables")):
        key = f"files[{index}]"
        _expect(file, key, spec, dict, "a table with name and accept")
        _known(file, spec, {"name", "accept"}, f"{key}.")
        name = _expect(file, f"{key}.name", spec.get("name"), str, "the file's name, such as \"hw1.py\"")
        accept = _strings(file, f"{key}.accept", spec.get("accept", [name]))
        if not name.endswith((".py", ".ipynb")) or any(not a.endswith((".py", ".ipynb")) for a in accept):
            raise CourseError(MSG_KEY.format(file=file, key=key, expected="names of .py or .ipynb files",
                                             found=[name, *accept]))
        files.append(FileSpec(name, tuple(accept)))
    exercises = _expect(file, "exercises", data.get("exercises", {}), dict,
                        "a table: exercise = [\"function\", ...]")
    for name, functions in exercises.items():
        if name in ASSIGNMENT_KEYS:
            raise CourseError(f"{file}: exercises.{name}: `{name}` is a key of the contract itself: move it above "
                              "the first [table] (TOML puts every key after [exercises] into that table)")
        for function in _strings(file, f"exercises.{name}", functions):
            if not function.isidentifier():
                raise CourseError(MSG_KEY.format(file=file, key=f"exercises.{name}", found=function,
                                                 expected="names of the contract's functions and classes"))
    limits = _expect(file, "limits", data.get("limits", {}), dict, "a table of limits")
    _known(file, limits, {f.name for f in fields(Limits)}, "limits.")
    for key, value in limits.items():
        _expect(file, f"limits.{key}", value, (int, float), "a number")
    notebooks = _expect(file, "template_notebooks", data.get("template_notebooks", {}), dict,
                        "a table: \"x.ipynb\" = \"x.py\"")
    for key, value in notebooks.items():
        _expect(file, f"template_notebooks.{key}", value, str, "the name of a reference .py in percent format")
    title = _expect(file, "title", data["title"], str, "a string")
    return Assignment(
        id=assignment_id, title=title, files=files, exercises=dict(exercises), limits=Limits(**limits),
        reference_modules=set(_strings(file, "reference_modules", data.get("reference_modules", []))),
        course=course, package=package,
        requires=_strings(file, "requires", data.get("requires", [])),
        template_sources=_strings(file, "template", data.get("template", [])),
        template_notebooks=dict(notebooks),
        helpers=_strings(file, "helpers", data.get("helpers", [])),
    )


def read_course(root: Path) -> Course:
    file = root / COURSE_FILE
    data = _toml(file)
    _known(file, data, {"course", "layout"})
    table = _expect(file, "course", data.get("course", {}), dict, "a [course] table")
    _known(file, table, {"name", "hidden"}, "course.")
    name = _expect(file, "course.name", table.get("name", root.name), str, "the course's name")
    hidden = tuple(_strings(file, "course.hidden", table.get("hidden", list(HIDDEN))))
    layout = _expect(file, "layout", data.get("layout", {}), dict, "a [layout] table of folders")
    _known(file, layout, set(LAYOUT), "layout.")
    for key, value in layout.items():
        _expect(file, f"layout.{key}", value, str, "a folder relative to the course root")
    return Course(root=root, name=name, layout={**LAYOUT, **layout}, hidden=hidden)


def find_course(start: Path | None = None) -> Path | None:
    """The course root: $MLGRADE_COURSE, else the first folder from ``start`` (cwd) upward with the course file."""
    if os.environ.get(COURSE_ENV):
        return Path(os.environ[COURSE_ENV]).resolve()
    here = Path(start or Path.cwd()).resolve()
    return next((p for p in (here, *here.parents) if (p / COURSE_FILE).is_file()), None)


def open_course(folder: Path | str | None = None) -> Course:
    """The course at ``folder`` (--course), or the one :func:`find_course` finds."""
    root = Path(folder).resolve() if folder else find_course()
    if root is None:
        raise CourseError(MSG_NOT_FOUND.format(file=COURSE_FILE, start=Path.cwd(), env=COURSE_ENV))
    if not (root / COURSE_FILE).is_file():
        raise CourseError(f"{root} is not an mlgrade course: it has no {COURSE_FILE} "
                          f"(make one with `mlgrade new course {root}`)")
    return read_course(root)
