"""The results plugin: Gradescope's results.json, with the lifecycle of pytest's junitxml.

The runner (:func:`mlgrade.runner.grade`) runs pytest with this module, :mod:`mlgrade.fixtures`
and a :class:`Submission` (which puts the :class:`~mlgrade.grading.GradingSession` in the run's
stash) as plugins. ``--gradescope-results PATH`` names the output. ``pytest_configure`` puts a
:class:`GradescopeReporter` in the config's stash (:data:`REPORTER`); it declares and numbers the
tests at collection, collects a :class:`TestResult` per report (``pytest_runtest_makereport``),
and at ``pytest_sessionfinish`` kills every process that ran student code, then makes results.json
(:func:`to_gradescope`, bounded by :func:`_bounded`, or :func:`engine_failure`) and writes it once,
atomically (:func:`write_results`). Scoring lives in :func:`score` and :func:`earned`, the rule for
"passed" in :func:`passed`; the wording the student reads in :mod:`mlgrade.feedback`.

Tests declare themselves with :func:`mlgrade.check` (or gradescope-utils' decorators).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from contextvars import Token
from dataclasses import dataclass

import pytest

from mlgrade import feedback
from mlgrade.feedback import MAX_OUTPUT, MAX_TEST_OUTPUT, MSG_ENGINE_FAILED
from mlgrade.fixtures import CREDIT
from mlgrade.grading import SESSION, VISIBILITIES, GradingSession, attach, detach

__all__ = ["REPORTER", "GradescopeReporter", "Submission", "TestResult", "engine_failure", "failure_reason",
           "is_engine_failure", "score", "to_gradescope", "write_results"]

ENGINE_FAILURE = "engine_failure"  # extra_data["mlgrade"] of a results.json that holds no score
MAX_RESULTS_BYTES = 1 << 20


@dataclass
class TestResult:
    name: str
    max_score: float
    visibility: str = "visible"
    number: str | None = None
    tags: tuple = ()
    hide_errors: str | None = None
    passed: bool | None = None
    fraction: float | None = None  # partial credit declared by the test
    output: str = ""
    nodeid: str = ""
    internal_error: bool = False  # the grader itself raised (MSG_INTERNAL): the engine's failure, not the student's


def score(results: list[TestResult]) -> tuple[float, float]:
    """(score, max_score): a passed test earns its weight, a failed one its declared fraction."""
    total = maximum = 0.0
    for r in results:
        maximum += r.max_score
        total += earned(r)
    return min(total, maximum), maximum


def earned(r: TestResult) -> float:
    fraction = r.fraction if r.fraction is not None else (1.0 if r.passed else 0.0)
    return r.max_score * min(max(fraction, 0.0), 1.0)


def passed(test: TestResult | Mapping) -> bool:
    """The one rule for "passed": the test ran to its end and earned its whole weight (partial
    credit is not a pass). A test of a results.json carries this verdict as its status."""
    if isinstance(test, Mapping):
        return test.get("status") == "passed"
    return bool(test.passed) and earned(test) == test.max_score


def to_gradescope(results: list[TestResult], seconds: float, output: str) -> dict:
    total, _ = score(results)
    return _bounded({
        "score": round(total, 6),
        "execution_time": int(round(seconds)),
        "output": _cut(output, MAX_OUTPUT),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": r.name,
                **({"number": r.number} if r.number else {}),
                "score": round(earned(r), 6),
                "max_score": r.max_score,
                "status": "passed" if passed(r) else "failed",
                "output": r.output,
                "visibility": r.visibility,
                **({"tags": list(r.tags)} if r.tags else {}),
            }
            for r in results
        ],
    })


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n... (truncated)"


def _bounded(data: dict) -> dict:
    """results.json stays under MAX_RESULTS_BYTES (what Gradescope and PrairieLearn accept),
    however many tests and whatever the submission printed: test outputs shrink until it fits."""
    for limit in (MAX_TEST_OUTPUT, 2000, 500, 100, 0):
        if len(json.dumps(data).encode()) <= MAX_RESULTS_BYTES:
            break
        for test in data["tests"]:
            test["output"] = _cut(test["output"], limit)
    return data


def engine_failure(reason: str, seconds: float, output: str = "") -> dict:
    """The results.json of a grading that did not complete: no tests, no score, the reason.

    The one schema for every path that fails (a worker that cannot start, a grader error, a
    grading process that crashed or overran in batch, run_autograder's last resort).
    """
    message = MSG_ENGINE_FAILED.format(reason=reason.strip()[:500])
    return {
        "score": 0.0,
        "execution_time": int(round(seconds)),
        "output": (output.rstrip() + "\n" if output.strip() else "") + message,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"mlgrade": ENGINE_FAILURE, "reason": reason.strip()[:500]},
    }


def is_engine_failure(results: dict) -> bool:
    return isinstance(results.get("extra_data"), dict) and results["extra_data"].get("mlgrade") == ENGINE_FAILURE


def failure_reason(results: dict) -> str:
    """Why a results.json of :func:`engine_failure` gave no score ("" for a graded one)."""
    return str(results["extra_data"].get("reason", "")) if is_engine_failure(results) else ""


def write_results(path: str, data: dict) -> None:
    """Write results.json atomically (a reader never sees a partial file)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".results-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        # nothing half-written is left behind, and an earlier results.json stays as it was
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- the plugin ------------------------------------------------------------------------------

class Submission:
    """The plugin that says what a run grades: the :class:`GradingSession` goes into the run's
    stash before any other plugin is configured, and out after every other one is unconfigured."""

    def __init__(self, session: GradingSession, sections: dict[str, list[str]], start: float):
        """``sections``: contract names by exercise, in the order Gradescope should list them;
        ``start``: when the grading began (time.monotonic()), for results.json's execution_time."""
        self.session, self.sections, self.start = session, sections, start
        self.config: pytest.Config | None = None  # the run's, once configured: its stash holds the reporter
        self._token: Token | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        self.config = config
        self._token = attach(config, self.session)
        config.stash[_GRADING] = self

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        detach(config, self._token)


_GRADING = pytest.StashKey[Submission]()
REPORTER = pytest.StashKey["GradescopeReporter"]()


def pytest_addoption(parser):
    group = parser.getgroup("mlgrade", "Gradescope results")
    group.addoption("--gradescope-results", dest="gradescope_results", metavar="PATH", default=None,
                    help="write Gradescope's results.json to PATH when the session finishes")


def pytest_configure(config):
    config.addinivalue_line("markers", "mlgrade(name, weight, visibility, number, tags): a graded test")
    grading = config.stash.get(_GRADING, None)
    if grading is not None:  # a run grading a submission (mlgrade.runner), not any pytest run
        reporter = GradescopeReporter(config.stash[SESSION], grading.sections, grading.start,
                                      config.getoption("gradescope_results"))
        config.stash[REPORTER] = reporter
        config.pluginmanager.register(reporter)


def pytest_unconfigure(config):
    reporter = config.stash.get(REPORTER, None)
    if reporter is not None:
        config.pluginmanager.unregister(reporter)  # stays in the stash: the runner reads what it made


class GradescopeReporter:
    """Declares and numbers the graded tests, collects their results, writes results.json once."""

    def __init__(self, session: GradingSession, sections: dict[str, list[str]], start: float, path: str | None):
        self.session = session
        self.start = start
        self.path = path
        self.section_of = {name: i for i, names in enumerate(sections.values(), start=1) for name in names}
        self.contract_names = list(self.section_of)
        self.counters: dict[int, int] = {}
        self.tests: dict[str, TestResult] = {}
        self.internal_errors: list[str] = []  # the graders' tracebacks, for the instructor's log
        self.failure: str | None = None  # why no score was given (set at session finish)
        self.results: dict | None = None  # results.json, made at session finish

    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            self.tests[item.nodeid] = self._declare(item)
        order = {r.nodeid: tuple(int(p) if p.isdigit() else p for p in (r.number or "").split(".")) for r in self.tests.values()}
        items.sort(key=lambda item: order[item.nodeid])
        self.tests = {item.nodeid: self.tests[item.nodeid] for item in items}

    def _declare(self, item) -> TestResult:
        marker = item.get_closest_marker("mlgrade")
        fn = getattr(item, "function", None)
        if marker is None:
            raise pytest.UsageError(f"{item.nodeid}: graded tests need @check('<contract name>: <what>')")
        kw = marker.kwargs
        params = getattr(getattr(item, "callspec", None), "params", {})
        name = kw["name"]
        if "{" in name:
            name = name.format(**params)
        elif params:
            name = f"{name} [{item.callspec.id}]"
        prefix = name.split(": ", 1)[0]
        if prefix not in self.contract_names:
            raise pytest.UsageError(f"{item.nodeid}: test name {name!r} must begin with a contract name "
                                    f"({', '.join(self.contract_names)})")
        visibility = getattr(fn, "__visibility__", kw.get("visibility", "visible"))
        if visibility not in VISIBILITIES:
            raise pytest.UsageError(f"{item.nodeid}: unknown visibility {visibility!r}")
        number = getattr(fn, "__number__", kw.get("number"))
        if number is None:
            section = self.section_of[prefix]
            self.counters[section] = self.counters.get(section, 0) + 1
            number = f"{section}.{self.counters[section]}"
        return TestResult(
            name=name,
            max_score=float(getattr(fn, "__weight__", kw.get("weight", 1.0))),
            visibility=visibility,
            number=str(number),
            tags=tuple(getattr(fn, "__tags__", kw.get("tags", ()))),
            hide_errors=getattr(fn, "__hide_errors__", None),
            nodeid=item.nodeid,
        )

    def pytest_runtest_setup(self, item):
        self.session.begin_test()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        result = self.tests.get(item.nodeid)
        if result is None:
            return report
        if report.failed:
            result.passed = False
            result.output, internal = feedback.failure_output(call.excinfo.value if call.excinfo else None,
                                                              result.hide_errors, self.session)
            if internal is not None:
                result.internal_error = True
                self.internal_errors.append(f"{result.name}:\n{internal}")
        elif call.when == "call" and report.passed and result.passed is None:
            result.passed = True
        if call.when == "call" or report.failed:
            credit = item.stash.get(CREDIT, None)
            if credit is not None and credit.fraction is not None:
                result.fraction = credit.fraction
            printed = feedback.passed_output(self.session) if result.passed else ""
            if printed:
                result.output = printed
        return report

    def pytest_sessionfinish(self, session, exitstatus):
        # every process that ran student code dies before any result is made
        self.session.close()
        tests = self.ordered()
        seconds = time.monotonic() - self.start
        self.failure = self._engine_failure(exitstatus, tests)
        if self.failure:
            self.results = engine_failure(self.failure, seconds)
        else:
            self.results = to_gradescope(tests, seconds, feedback.summary(self.session))
        if self.path:
            write_results(self.path, self.results)

    def _engine_failure(self, exitstatus, tests) -> str | None:
        """Why this grading must not give a score, or None: a grade is right or it is not given."""
        if self.session.engine_failure is not None:
            return f"the sandbox failed ({self.session.engine_failure.reason})"
        if self.internal_errors:
            return f"{len(self.internal_errors)} test(s) hit an error in the grader"
        if exitstatus not in (0, 1) or not tests:
            return f"pytest could not run the graders (exit code {int(exitstatus)}, {len(tests)} tests)"
        return None

    def ordered(self) -> list[TestResult]:
        return list(self.tests.values())
