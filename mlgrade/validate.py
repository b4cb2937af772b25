"""``mlgrade validate``: grade the graders.

The reference must score 100%, the blank template 0%, and every mutant under
``tests/mutants/<assignment>/`` must lose points on each test it names. A mutant is a TOML
file: ``description``, ``file``, ``must_fail`` (test-name prefixes) and ``[[replace]]``
tables of ``old``/``new`` text applied to the reference file (``old`` must occur once). A
mutant with ``earns_nothing = true`` is a fake (a constant of the right shape, a model that
makes a property hold trivially): every test it names must give it no point at all.
Correct alternatives, the mirror of mutants, live in ``tests/alternatives/<assignment>/`` in
the same format without ``must_fail``: each one is the reference rewritten the way students
legitimately write it (float32, another decomposition, containers and aliases, loops), and
must score 100%. For every test, the report says which mutants it catches (takes points
from), and flags a value test that catches none of the mutants of its function.
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
from typing import Callable
from pathlib import Path

import nbformat
from rich.markup import escape
from rich.table import Table

from mlgrade.dependencies import undeclared_imports
from mlgrade.intake import Submission
from mlgrade.pool import Pool, ensure_slot_users, grade_outcome, run_pool
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
    earns_nothing: bool = False  # a fake: no test it names may give it a point


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
    catches: dict[str, list[str]] = field(default_factory=dict)  # test name -> mutants it took points from
    powerless: list[str] = field(default_factory=list)  # value tests that caught no mutant of their function

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)


def load_mutant(path: Path, alternative: bool = False) -> Mutant:
    """A mutant, or with ``alternative`` a correct alternative (no ``must_fail``), from its TOML file."""
    data = tomllib.loads(Path(path).read_text())
    missing = {"description", "file", "replace"} - set(data) if alternative else \
        {"description", "file", "must_fail", "replace"} - set(data)
    if missing:
        raise MutantError(f"{Path(path).name}: missing {sorted(missing)}")
    return Mutant(Path(path).stem, data["description"], data["file"], list(data.get("must_fail", [])),
                  data["replace"], bool(data.get("earns_nothing", False)))


def load_mutants(folder: Path | None, alternative: bool = False) -> list[Mutant]:
    if folder is None or not Path(folder).is_dir():
        return []
    return [load_mutant(path, alternative) for path in sorted(Path(folder).glob("*.toml"))]


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
        elif mutant.earns_nothing and any(earned(t) > 0 for t in named):
            problems.append(f"earned points on {', '.join(repr(t.name) for t in named if earned(t) > 0)[:300]}")
        elif all(passed(t) for t in named):
            problems.append(f"passed every {prefix!r} test")
    return not problems, "; ".join(problems)


GRADING_TIMEOUT = 900  # seconds a pool process may take for one submission before it is replaced
DTYPE_TEST = "float64 results, the contract's dtype"  # a test of its own, no mutant's business


def _function_of(name: str) -> str:
    return name.split(":", 1)[0].strip()


def powerless_tests(mutants: list[Mutant], catches: dict[str, list[str]], test_names: list[str]) -> list[str]:
    """Value tests of a function some mutant targets that caught none of that function's mutants."""
    targeted = {}
    for mutant in mutants:
        if mutant.earns_nothing:
            continue
        for prefix in mutant.must_fail:
            targeted.setdefault(_function_of(prefix), set()).add(mutant.name)
    flagged = []
    for name in test_names:
        function = _function_of(name)
        if function in targeted and DTYPE_TEST not in name and not targeted[function] & set(catches.get(name, ())):
            flagged.append(name)
    return flagged


def _staged(assignment, folder: Path, target: Path) -> None:
    problems = stage(assignment, contract_files(assignment, folder), target, root=folder)
    if problems:
        raise ValueError(f"{folder}: " + "; ".join(problems))


@dataclass
class _Case:
    """One submission validate grades: its staged folder and how its outcome is judged."""
    label: str
    folder: Path
    judge: Callable  # (runner.Outcome) -> Verdict
    mutant: Mutant | None = None  # a mutant's losses also count as its tests' catches


def _expected(label: str, want: str):
    def judge(outcome) -> Verdict:
        total, maximum = outcome.results["score"], sum(t.max_score for t in outcome.tests)
        ok = total == maximum if want == "full" else total == 0
        failed = [t.name for t in outcome.tests if (want == "full") != passed(t)]
        detail = "" if ok else f"{len(failed)} unexpected: " + "; ".join(failed[:5])
        if want == "full" and not ok:
            detail += "\n" + "\n".join(t.output[:500] for t in outcome.tests if not passed(t))[:3000]
        return Verdict(label, ok, total, maximum, detail)
    return judge


def _trivial(label: str):
    def judge(outcome) -> Verdict:  # answers that did nothing must earn nothing
        earning = [t.name for t in outcome.tests if earned(t) > 0]
        detail = f"{len(earning)} tests give points: " + "; ".join(earning[:8]) if earning else ""
        if not outcome.graded:  # a grader that breaks on a wrong answer gives that student no score
            detail = "; ".join(filter(None, [outcome.results["extra_data"]["reason"], detail]))
            detail += ": " + "; ".join(t.name for t in outcome.tests if t.internal_error)[:500]
        return Verdict(label, outcome.graded and not earning, outcome.results["score"],
                       sum(t.max_score for t in outcome.tests), detail)
    return judge


def _alternative(label: str):
    def judge(outcome) -> Verdict:
        lost = [t for t in outcome.tests if earned(t) < t.max_score]
        detail = f"{len(lost)} tests lose points: " + "; ".join(t.name for t in lost[:5]) if lost else ""
        if lost:
            detail += "\n" + "\n".join(t.output[:300] for t in lost[:3])
        return Verdict(label, not lost and outcome.graded, outcome.results["score"],
                       sum(t.max_score for t in outcome.tests), detail)
    return judge


def _mutant(label: str, mutant: Mutant):
    def judge(outcome) -> Verdict:
        ok, detail = check_mutant(mutant, outcome.tests)
        return Verdict(label, ok, outcome.results["score"], sum(t.max_score for t in outcome.tests), detail)
    return judge


def _cases(assignment, only: str | None, work: Path) -> list[_Case]:
    """Every submission to grade, staged under ``work``, in the order the report lists them."""
    cases = []
    if not only:
        for label, folder, want in (("reference", assignment.reference_dir, "full"),
                                    ("template", assignment.template_dir, "zero")):
            _staged(assignment, Path(folder), work / label)
            cases.append(_Case(label, work / label, _expected(label, want)))
        for kind in TRIVIAL_KINDS:
            write_patched(assignment, kind, work / f"trivial-{kind}")
            cases.append(_Case(f"trivial {kind}", work / f"trivial-{kind}", _trivial(f"trivial {kind}")))
    for alternative in load_mutants(assignment.alternatives_dir, alternative=True):
        if not only or only in alternative.name:
            apply_mutant(alternative, assignment.reference_dir, work / f"alternative-{alternative.name}")
            label = f"alternative {alternative.name}"
            cases.append(_Case(label, work / f"alternative-{alternative.name}", _alternative(label)))
    for mutant in load_mutants(assignment.mutants_dir):
        if not only or only in mutant.name:
            apply_mutant(mutant, assignment.reference_dir, work / mutant.name)
            label = f"{'fake' if mutant.earns_nothing else 'mutant'} {mutant.name}"
            cases.append(_Case(label, work / mutant.name, _mutant(label, mutant), mutant))
    return cases


def _grade_all(assignment, cases: list[_Case], jobs: int, on_graded) -> None:
    """Grade every case, ``on_graded(case, outcome, failure reason)`` once each as it finishes:
    in this process with one kept fork server, or over the local pool's ``jobs`` processes
    (each its own worker user and fork server, as ``mlgrade grade`` runs a class)."""
    if jobs <= 1 or len(cases) <= 1:
        with keeping_fork_servers():
            for case in cases:
                on_graded(case, grade(assignment, case.folder), None)
        return
    by_name = {case.folder.name: case for case in cases}
    ensure_slot_users(jobs)
    errors = run_pool(Pool(assignment, jobs), [Submission(case.folder.name, case.folder) for case in cases], jobs,
                      GRADING_TIMEOUT, cases[0].folder.parent,
                      lambda sub, outcome, failure: on_graded(by_name[sub.student], outcome, failure and failure.reason),
                      fn=grade_outcome)
    if errors:
        raise RuntimeError("; ".join(errors))


def validate(assignment, only: str | None = None, console=None, jobs: int = 1) -> Report:
    """Grade the reference, template, trivial answers, alternatives and mutants (those whose name
    holds ``only``), over ``jobs`` grading processes; the report lists them in that order."""
    report = Report()
    undeclared = undeclared_imports(assignment)
    report.verdicts.append(Verdict("dependencies", not undeclared, 0.0, 0.0, "; ".join(undeclared)))
    _progress(console, report.verdicts[-1])
    verdicts: dict[str, Verdict] = {}
    outcomes: dict[str, object] = {}

    def on_graded(case: _Case, outcome, failure: str | None) -> None:
        if outcome is None:
            verdicts[case.label] = Verdict(case.label, False, 0.0, 0.0, f"not graded: {failure}")
        else:
            verdicts[case.label], outcomes[case.label] = case.judge(outcome), outcome
        _progress(console, verdicts[case.label])

    with tempfile.TemporaryDirectory(prefix="mlgrade-validate-", ignore_cleanup_errors=True) as tmp:
        cases = _cases(assignment, only, Path(tmp))
        _grade_all(assignment, cases, max(1, int(jobs)), on_graded)
    report.verdicts += [verdicts[case.label] for case in cases]
    mutants = [case for case in cases if case.mutant is not None]
    for case in mutants:
        outcome = outcomes.get(case.label)
        for t in outcome.tests if outcome is not None else ():
            if earned(t) < t.max_score:
                report.catches.setdefault(t.name, []).append(case.mutant.name)
    if not only:
        test_names = next(([t.name for t in outcomes[c.label].tests] for c in mutants if c.label in outcomes), [])
        report.powerless = powerless_tests([c.mutant for c in mutants], report.catches, test_names)
    if console is not None:
        table = Table(title=f"validate {assignment.id}", title_justify="left")
        for col in ("submission", "score", "verdict"):
            table.add_column(col)
        for v in report.verdicts:
            table.add_row(v.submission, f"{v.score:g}/{v.max_score:g}", "[green]ok[/]" if v.ok else f"[red]{escape(v.detail)}[/]")
        console.print(table)
        if report.catches or report.powerless:
            power = Table(title=f"validate {assignment.id}: the mutants each test catches", title_justify="left")
            power.add_column("test")
            power.add_column("mutants that lose points on it")
            for name in sorted(set(report.catches) | set(report.powerless)):
                caught = report.catches.get(name, [])
                power.add_row(escape(name), escape(", ".join(caught)) if caught else "[yellow]none of its function's[/]")
            console.print(power)
        for name in report.powerless:
            console.print(f"[yellow]catches no mutant of its function:[/] {escape(name)}")
        console.print("[green]all good[/]" if report.ok else "[red]validation failed[/]")
    return report


def _progress(console, verdict: Verdict) -> None:
    if console is not None:
        mark = "[green]ok[/]" if verdict.ok else "[red]FAIL[/]"
        console.print(f"  {mark} {verdict.submission}: {verdict.score:g}/{verdict.max_score:g} {escape(verdict.detail[:200])}",
                      markup=True, highlight=False)
