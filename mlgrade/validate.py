"""``mlgrade validate``: grade the graders.

The reference must score 100%, the blank template 0%, and every mutant under
``tests/mutants/<assignment>/`` must lose points on each test it names. A mutant is a TOML
file: ``description``, ``file``, ``must_fail`` (test-name prefixes) and ``[[replace]]``
tables of ``old``/``new`` text applied to the reference file (``old`` must occur once).
Trivial submissions generated from the reference (:mod:`mlgrade.trivial`: every contract
function returns zeros of the reference's answer, its first argument, None, or raises
NotImplementedError) must earn no point at all, and be graded: a grader that breaks on a wrong
answer gives that student no score.
"""
from __future__ import annotations

import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from rich.markup import escape
from rich.table import Table

from mlgrade.dependencies import undeclared_imports
from mlgrade.results import earned, passed
from mlgrade.runner import grade, keeping_fork_servers
from mlgrade.staging import contract_files, stage
from mlgrade.trivial import TRIVIAL_KINDS, write_patched


__all__ = ["Mutant", "MutantError", "load_mutant", "load_mutants", "apply_mutant", "validate", "check_mutant"]


class MutantError(ValueError):
    pass


@dataclass
class Mutant:
    name: str
    description: str
    file: str
    must_fail: list[str]
    replace: list[dict]


@dataclass
class Verdict:
    submission: str
    ok: bool
    score: float
    max_score: float
    detail: str = ""


@dataclass
class Report:
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)


def load_mutant(path: Path) -> Mutant:
    data = tomllib.loads(Path(path).read_text())
    missing = {"description", "file", "must_fail", "replace"} - set(data)
    if missing:
        raise MutantError(f"{Path(path).name}: missing {sorted(missing)}")
    return Mutant(Path(path).stem, data["description"], data["file"], list(data["must_fail"]), data["replace"])


def load_mutants(folder: Path) -> list[Mutant]:
    return [load_mutant(path) for path in sorted(Path(folder).glob("*.toml"))]


def apply_mutant(mutant: Mutant, reference_dir: Path, target: Path) -> None:
    """Copy the reference's files into ``target`` and apply the mutant's patches to one of them
    (the others stay correct, so only the mutated file's tests should lose points)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in Path(reference_dir).iterdir():
        if path.is_file():
            shutil.copy(path, target / path.name)
    if mutant.file.endswith(".ipynb"):  # patched in the code cells' sources, not in the JSON text
        nb = nbformat.read(str(Path(reference_dir) / mutant.file), as_version=4)
        cells = [cell for cell in nb.cells if cell.cell_type == "code"]
        for patch in mutant.replace:
            hits = [cell for cell in cells if patch["old"] in cell.source]
            count = sum(cell.source.count(patch["old"]) for cell in hits)
            if count != 1:
                raise MutantError(f"{mutant.name}: text to replace occurs {count} times in {mutant.file} (needs exactly 1)")
            hits[0].source = hits[0].source.replace(patch["old"], patch["new"])
        nbformat.write(nb, str(target / mutant.file))
        return
    source = (Path(reference_dir) / mutant.file).read_text()
    for patch in mutant.replace:
        count = source.count(patch["old"])
        if count != 1:
            raise MutantError(f"{mutant.name}: text to replace occurs {count} times in {mutant.file} (needs exactly 1)")
        source = source.replace(patch["old"], patch["new"])
    (target / mutant.file).write_text(source)


def check_mutant(mutant: Mutant, tests) -> tuple[bool, str]:
    """A mutant is caught when, for each must_fail prefix, some test it names lost points."""
    problems = []
    for prefix in mutant.must_fail:
        named = [t for t in tests if t.name.startswith(prefix)]
        if not named:
            problems.append(f"no test named {prefix!r}")
        elif all(passed(t) for t in named):
            problems.append(f"passed every {prefix!r} test")
    return not problems, "; ".join(problems)




def _staged(assignment, folder: Path, target: Path) -> None:
    problems = stage(assignment, contract_files(assignment, folder), target, root=folder)
    if problems:
        raise ValueError(f"{folder}: " + "; ".join(problems))


def validate(assignment, only: str | None = None, console=None) -> Report:
    report = Report()
    undeclared = undeclared_imports(assignment)
    report.verdicts.append(Verdict("dependencies", not undeclared, 0.0, 0.0, "; ".join(undeclared)))
    _progress(console, report.verdicts[-1])
    # one fork server for every grading below: torch is imported once, not per submission
    with keeping_fork_servers(), tempfile.TemporaryDirectory(prefix="mlgrade-validate-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        if not only:
            for label, folder, want in (("reference", assignment.reference_dir, "full"),
                                        ("template", assignment.template_dir, "zero")):
                staged = work / label
                _staged(assignment, Path(folder), staged)
                outcome = grade(assignment, staged)
                total, maximum = outcome.results["score"], sum(t.max_score for t in outcome.tests)
                ok = total == maximum if want == "full" else total == 0
                failed = [t.name for t in outcome.tests if (want == "full") != passed(t)]
                detail = "" if ok else f"{len(failed)} unexpected: " + "; ".join(failed[:5])
                if want == "full" and not ok:
                    detail += "\n" + "\n".join(t.output[:500] for t in outcome.tests if not passed(t))[:3000]
                report.verdicts.append(Verdict(label, ok, total, maximum, detail))
                _progress(console, report.verdicts[-1])
            for kind in TRIVIAL_KINDS:  # answers that did nothing must earn nothing
                staged = work / f"trivial-{kind}"
                write_patched(assignment, kind, staged)
                outcome = grade(assignment, staged)
                earning = [t.name for t in outcome.tests if earned(t) > 0]
                detail = f"{len(earning)} tests give points: " + "; ".join(earning[:8]) if earning else ""
                if not outcome.graded:  # a grader that breaks on a wrong answer gives that student no score
                    detail = "; ".join(filter(None, [outcome.results["extra_data"]["reason"], detail]))
                    detail += ": " + "; ".join(t.name for t in outcome.tests if t.internal_error)[:500]
                report.verdicts.append(Verdict(f"trivial {kind}", outcome.graded and not earning,
                                               outcome.results["score"], sum(t.max_score for t in outcome.tests), detail))
                _progress(console, report.verdicts[-1])
        for mutant in load_mutants(assignment.mutants_dir):
            if only and only not in mutant.name:
                continue
            staged = work / mutant.name
            apply_mutant(mutant, assignment.reference_dir, staged)
            outcome = grade(assignment, staged)
            ok, detail = check_mutant(mutant, outcome.tests)
            maximum = sum(t.max_score for t in outcome.tests)
            report.verdicts.append(Verdict(f"mutant {mutant.name}", ok, outcome.results["score"], maximum, detail))
            _progress(console, report.verdicts[-1])
    if console is not None:
        table = Table(title=f"validate {assignment.id}", title_justify="left")
        for col in ("submission", "score", "verdict"):
            table.add_column(col)
        for v in report.verdicts:
            table.add_row(v.submission, f"{v.score:g}/{v.max_score:g}", "[green]ok[/]" if v.ok else f"[red]{escape(v.detail)}[/]")
        console.print(table)
        console.print("[green]all good[/]" if report.ok else "[red]validation failed[/]")
    return report


def _progress(console, verdict: Verdict) -> None:
    if console is not None:
        mark = "[green]ok[/]" if verdict.ok else "[red]FAIL[/]"
        console.print(f"  {mark} {verdict.submission}: {verdict.score:g}/{verdict.max_score:g} {escape(verdict.detail[:200])}",
                      markup=True, highlight=False)
