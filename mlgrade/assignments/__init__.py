"""The assignment catalogue: what each assignment's students submit, and where its parts live.

Each assignment has a package here, named after its id (``ml_hw6`` for ml-hw6), shipped to students: the contract in ``assignment.toml``,
public checks ``test_public*.py`` and their stored expected values) and, in an instructor's
checkout or autograder zip only, ``graders/<id>``, ``reference/<id>``,
``student_template/<id>`` and ``tests/mutants/<id>`` under the project root.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from mlgrade.loading import ModuleSource, load_file
from mlgrade.limits import Limits

__all__ = ["Assignment", "FileSpec", "get", "catalogue", "find_root", "UnknownAssignment"]

HERE = Path(__file__).resolve().parent
ROOT_ENV = "MLGRADE_ROOT"


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
    package_dir: Path
    root: Path | None = None
    extra: dict = field(default_factory=dict)
    requires: list[str] = field(default_factory=list)  # distributions its graders and reference import
    template_sources: list[str] = field(default_factory=list)  # reference files the template is made from
    # student notebooks made from a reference .py in jupytext's percent format: {notebook: source}
    template_notebooks: dict[str, str] = field(default_factory=dict)
    helpers: list[str] = field(default_factory=list)  # files of package_dir given to students (utils.py)

    def _under(self, folder: str) -> Path | None:
        return self.root / folder / self.id if self.root else None

    @property
    def graders_dir(self) -> Path | None:
        return self._under("graders")

    @property
    def reference_dir(self) -> Path | None:
        return self._under("reference")

    @property
    def template_dir(self) -> Path | None:
        return self._under("student_template")

    @property
    def mutants_dir(self) -> Path | None:
        return self.root / "tests" / "mutants" / self.id if self.root else None

    def public_tests(self) -> list[Path]:
        return sorted(self.package_dir.glob("test_public*.py"))

    def has_graders(self) -> bool:
        return bool(self.graders_dir and self.graders_dir.is_dir())

    def load_submission(self, submission_dir: Path) -> list[ModuleSource]:
        """The helpers given with the sheet (loaded first: the submission's ``import utils`` finds
        them, never a submitted file of that name), then the contract's files."""
        given = [self.helper_module(name) for name in self.helpers]
        return given + [load_file(Path(submission_dir), list(f.accept), self.reference_modules) for f in self.files]

    def helper_module(self, name: str) -> ModuleSource:
        """The helper ``name`` of this package (``utils.py``) as a worker module of its stem."""
        source = (self.package_dir / name).read_text()
        return ModuleSource(name=Path(name).stem, file=name, chunks=[(f"{name} (given with the sheet)", source)])

    def protected_paths(self) -> list[str]:
        """What a worker must not see: hidden tests, reference, mutants, history."""
        if not self.root:
            return []
        return [str(self.root / p) for p in ("graders", "reference", "tests", ".git") if (self.root / p).exists()]


def find_root(start: Path | None = None) -> Path | None:
    """The project root holding ``graders/``: $MLGRADE_ROOT, else above cwd, else above the package."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    for base in [Path(start or Path.cwd()).resolve(), HERE.parent.parent]:
        for candidate in [base, *base.parents]:
            if (candidate / "graders").is_dir():
                return candidate
    return None


def _read(folder: Path, root: Path | None) -> Assignment:
    data = tomllib.loads((folder / "assignment.toml").read_text())
    known = {f.name for f in fields(Limits)}
    unknown = set(data.get("limits", {})) - known
    if unknown:
        raise ValueError(f"{folder.name}/assignment.toml: unknown limits {sorted(unknown)}")
    return Assignment(
        id=data["id"],
        title=data["title"],
        files=[FileSpec(f["name"], tuple(f.get("accept", [f["name"]]))) for f in data["files"]],
        exercises=data.get("exercises", {}),
        limits=Limits(**data.get("limits", {})),
        reference_modules=set(data.get("reference_modules", [])),
        package_dir=folder,
        root=root,
        requires=list(data.get("requires", [])),
        template_sources=list(data.get("template", [])),
        template_notebooks=dict(data.get("template_notebooks", {})),
        helpers=list(data.get("helpers", [])),
    )


def catalogue(root: Path | None = None) -> list[Assignment]:
    root = root or find_root()
    return [_read(d, root) for d in sorted(HERE.iterdir()) if (d / "assignment.toml").is_file()]


def get(assignment_id: str, root: Path | None = None) -> Assignment:
    found = {a.id: a for a in catalogue(root)}
    if assignment_id not in found:
        raise UnknownAssignment(f"unknown assignment {assignment_id!r} (known: {', '.join(found)})")
    return found[assignment_id]
