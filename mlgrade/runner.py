"""Grade one submission: load it, start its sandbox, run the graders with pytest, write results.

The grading process imports pytest, the graders and the reference; the submission only
ever reaches the worker. pytest collects the graders' folder and the package's public
checks, never the submission folder, with a configuration of its own (no ini file,
conftest or plugin from elsewhere).
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import os
import site
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgrade.course import Assignment
from mlgrade import fixtures, results as results_plugin
from mlgrade.grading import GradingSession
from mlgrade.results import REPORTER, Submission, TestResult, engine_failure, is_engine_failure, write_results
from mlgrade.forkserver import Zygote, grading_started
from mlgrade.sandbox import Sandbox
from mlgrade.terminal import PrintableStream

__all__ = ["ForkServers", "Outcome", "fork_server", "grade", "kept_fork_server", "keep_fork_servers", "keeping_fork_servers",
           "template_imports"]

PYTEST_INI = Path(__file__).with_name("pytest-grading.ini")
UNSAFE_ENV = "MLGRADE_UNSAFE_NO_ISOLATION"


@dataclass
class Outcome:
    results: dict  # Gradescope's results.json content
    tests: list[TestResult]
    log: str  # pytest's own output and grader tracebacks, for instructors

    @property
    def graded(self) -> bool:
        """False when the engine failed: ``results`` then holds no score (results.engine_failure)."""
        return not is_engine_failure(self.results)


# chooses its backend from the environment it is imported in: a worker's (Agg), not ours
NOT_PRELOADED = ("mlgrade", "matplotlib", "IPython")


def template_imports(assignment: Assignment) -> list[str]:
    """The library modules the assignment's template imports, in order: a submission imports them too.

    Only the template is read, never the reference: the fork server is a fork of this process,
    and nothing of a reference may be in its memory (:mod:`mlgrade.forkserver`).
    """
    folder = assignment.template_dir
    own = tuple({Path(f.name).stem for f in assignment.files} | {Path(name).stem for name in assignment.helpers})
    found: list[str] = []
    for path in sorted(folder.iterdir()) if folder and folder.is_dir() else ():
        if path.suffix == ".py":
            sources = [path.read_text()]
        elif path.suffix == ".ipynb":
            cells = json.loads(path.read_text()).get("cells", [])
            sources = ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]
        else:
            continue
        for source in sources:
            source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            try:
                tree = ast.parse(source)
            except SyntaxError:  # a notebook cell with magics
                continue
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                found += [n for n in names if n.split(".")[0] not in own + NOT_PRELOADED and n not in found]
    return [name for name in found if _installed(name.split(".")[0])]


def _installed(top: str) -> bool:
    """Whether ``top`` is the standard library's or an installed package (found without running it),
    not a file that happens to sit in the current folder or on a path someone added."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    roots = {os.path.realpath(path) for path in [*site.getsitepackages(), *(sysconfig.get_path(k) for k in
                                                  ("stdlib", "platstdlib", "purelib", "platlib"))]}
    where = os.path.realpath(spec.origin or next(iter(spec.submodule_search_locations or []), ""))
    return any(where.startswith(root + os.sep) for root in roots)


def fork_server(assignment: Assignment) -> Zygote:
    """A fork server for this assignment's workers, holding torch and the template's libraries."""
    return Zygote(preload=template_imports(assignment))


class ForkServers:
    """The fork servers a process keeps across its gradings, one per set of preloaded libraries
    (in practice one per assignment): a pool process or Dask worker grading a class, mlgrade's own
    test session. Each is started by :func:`fork_server` on first use, forked from this process
    while that is a clean point (:mod:`mlgrade.forkserver`), fresh after it; one that died is replaced."""

    def __init__(self):
        self._held: dict[tuple[str, ...], Zygote] = {}

    def get(self, assignment: Assignment) -> Zygote:
        key = tuple(template_imports(assignment))
        held = self._held.get(key)
        if held is None or held.proc.poll() is not None:
            held = self._held[key] = fork_server(assignment)
        return held

    def close(self) -> None:
        for held in self._held.values():
            held.close()
        self._held.clear()


# the fork servers grade() uses when given none; None: each grading starts and ends its own (mlgrade run)
_kept: ForkServers | None = None


def keep_fork_servers(servers: ForkServers | None) -> ForkServers | None:
    """From now on grade() takes its fork server from ``servers`` (None: its own); returns the previous setting."""
    global _kept
    previous, _kept = _kept, servers
    return previous


@contextlib.contextmanager
def keeping_fork_servers():
    """Within it, gradings share fork servers: the process's kept ones where it keeps some (a test
    session), else ones kept until the block ends (``mlgrade validate``: torch imported once)."""
    if _kept is not None:
        yield _kept
        return
    servers = ForkServers()
    keep_fork_servers(servers)
    try:
        yield servers
    finally:
        keep_fork_servers(None)
        servers.close()


def kept_fork_server(assignment: Assignment) -> Zygote | None:
    """The process's kept fork server for the assignment (:func:`keep_fork_servers`), or None."""
    return _kept.get(assignment) if _kept is not None else None


def grade(assignment: Assignment, submission_dir: Path, results_path: str | None = None,
          public_only: bool = False, echo: bool = False, zygote: Zygote | None = None) -> Outcome:
    """Grade ``submission_dir``; write results.json to ``results_path`` when given.

    ``zygote``: a fork server that starts workers without importing torch; without one, the
    process's kept fork server for the assignment (:func:`keep_fork_servers`), or else one of this
    grading's own, so that a worker restart is a fork, not an import.
    """
    start = time.monotonic()
    if zygote is None:
        zygote = kept_fork_server(assignment)
    # started first: a fork of this process before the submission, graders or reference are in it
    own_zygote = fork_server(assignment) if zygote is None else None
    try:
        modules = assignment.load_submission(Path(submission_dir))
        runnable = [m.spec() for m in modules if m.error is None]
        return _grade(assignment, modules, runnable, start, results_path, public_only, echo, zygote or own_zygote)
    finally:
        if own_zygote is not None:
            own_zygote.close()


def _grade(assignment: Assignment, modules, runnable: list[dict], start: float, results_path: str | None,
           public_only: bool, echo: bool, zygote: Zygote | None) -> Outcome:
    # hidden tests need a worker that cannot read them (the public checks are public anyway),
    # unless the instructor said otherwise for trusted code (mlgrade run/grade --unsafe-no-isolation)
    unsafe = os.environ.get(UNSAFE_ENV) == "1"
    sandbox = Sandbox(runnable, assignment.limits, assignment.protected_paths(), zygote=zygote,
                      require_isolation=not (public_only or unsafe)) if runnable else None
    if sandbox:
        sandbox.start_async()
    session = GradingSession(assignment, {m.name: m for m in modules}, sandbox)
    submission = Submission(session, {**assignment.exercises, "files": [f.name for f in assignment.files]}, start)
    paths = [str(p) for p in assignment.public_tests()]
    if not public_only:
        if not assignment.has_graders():
            raise FileNotFoundError(f"no graders for {assignment.id} under {assignment.graders_dir} "
                                    "(instructor checkout or autograder zip needed; students use `mlgrade check`)")
        paths.append(str(assignment.graders_dir))
    args = [*paths, "-c", str(PYTEST_INI), f"--rootdir={PYTEST_INI.parent}", "--import-mode=importlib",
            # one line per failure in the log: students read the exception's own message, grader
            # errors are logged in full; pytest's source-annotated tracebacks cost ~40 ms per failure
            "-p", "no:cacheprovider", "--assert=plain", "-q", "--tb=line", "-rN",
            # its end-of-session gc.collect() x5 costs ~1 s per submission in a process holding torch
            "-p", "no:unraisableexception",
            *([f"--gradescope-results={results_path}"] if results_path else []),
            f"--confcutdir={assignment.public_dir if public_only else assignment.graders_dir}"]
    buffer = io.StringIO()
    grading_started()  # the graders and the reference are imported from here on
    # only our plugin: installed pytest plugins neither slow grading down nor change it
    autoload = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        # `from <package> import oracles` and `import utils` in graders and public checks; echoed,
        # pytest's own lines carry the student's messages: filtered as all terminal text is
        with assignment.importable(), \
                contextlib.redirect_stdout(PrintableStream(sys.stdout) if echo else buffer), \
                contextlib.redirect_stderr(PrintableStream(sys.stderr) if echo else buffer):
            exit_code = pytest.main(args, plugins=[submission, fixtures, results_plugin])
    finally:
        session.close()
        if autoload is None:
            del os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = autoload
    log = buffer.getvalue()
    reporter = submission.config.stash.get(REPORTER, None) if submission.config is not None else None
    if reporter is not None and reporter.internal_errors:
        log += "\n\nGrader errors:\n" + "\n".join(reporter.internal_errors)
    results, failure = (reporter.results, reporter.failure) if reporter is not None else (None, None)
    if results is None:  # pytest stopped before its session began: nothing was collected or graded
        failure = f"pytest could not run the graders (exit code {int(exit_code)}, 0 tests)"
        results = engine_failure(failure, time.monotonic() - start)
        if results_path:
            write_results(results_path, results)
    if failure:
        log += f"\n\nNo score given: {failure}"
        if session.engine_failure is not None and session.engine_failure.output:
            log += "\nThe worker printed:\n" + session.engine_failure.output
    return Outcome(results, reporter.ordered() if reporter is not None else [], log)
