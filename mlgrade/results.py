"""pytest plugin: grade with the sandbox and write Gradescope's results.json.

Modelled on pytest's junitxml: :class:`GradescopePlugin` is registered by the runner,
``pytest_runtest_makereport`` collects a :class:`TestResult` per test, ``pytest_sessionfinish``
kills every process that ran student code; the runner then turns the results into
results.json (:func:`to_gradescope`, bounded by :func:`_bounded`) and writes it once,
atomically (:func:`write_results`). Scoring lives in :func:`score` and :func:`earned`, the
rule for "passed" in :func:`passed`; an engine failure has its own record
(:func:`engine_failure`), never a score.

Tests declare themselves with :func:`mlgrade.check` (or gradescope-utils' decorators).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pytest

from mlgrade.credit import Credit, Parts
from mlgrade.grading import VISIBILITIES, GradingSession, SubmissionError, set_current
from mlgrade.sandbox import EngineFailure

__all__ = ["GradescopePlugin", "TestResult", "engine_failure", "failure_reason", "is_engine_failure", "score", "to_gradescope",
           "write_results"]

MSG_ENGINE_FAILED = "The autograder itself failed (the instructor has the details). No score was given: {reason}"
ENGINE_FAILURE = "engine_failure"  # extra_data["mlgrade"] of a results.json that holds no score
MSG_NOT_GRADED = "not graded: the autograder itself failed (the instructor has the details)"
MSG_INTERNAL = "internal error in the grader ({type}); this is not your fault: please tell your instructor"
MAX_TEST_OUTPUT = 6000
MAX_OUTPUT = 20000  # the submission-wide message (load errors, what was graded)
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


def _seed(nodeid: str) -> int:
    return int.from_bytes(hashlib.sha256(nodeid.encode()).digest()[:8], "little")


class GradescopePlugin:
    def __init__(self, session: GradingSession, sections: dict[str, list[str]]):
        """``sections``: contract names by exercise, in the order Gradescope should list them."""
        self.session = session
        self.section_of = {name: i for i, names in enumerate(sections.values(), start=1) for name in names}
        self.contract_names = list(self.section_of)
        self.counters: dict[int, int] = {}
        self.results: dict[str, TestResult] = {}
        self.internal_errors: list[str] = []

    # -- fixtures ------------------------------------------------------------------------

    @pytest.fixture
    def rng(self, request) -> np.random.Generator:
        """A numpy Generator seeded by the test's id: the same inputs on every run."""
        return np.random.default_rng(_seed(request.node.nodeid))

    @pytest.fixture
    def seed(self, request) -> int:
        return _seed(request.node.nodeid) % 2**31

    @pytest.fixture
    def credit(self, request) -> Credit:
        return request.node.stash.setdefault(CREDIT, Credit())

    @pytest.fixture
    def parts(self, request) -> Parts:
        """``with parts(0.5, "lambda = 1"):``: partial credit by part (:mod:`mlgrade.credit`)."""
        request.node.stash[PARTS] = Parts(request.node.stash.setdefault(CREDIT, Credit()))
        return request.node.stash[PARTS]

    # -- hooks ---------------------------------------------------------------------------

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "mlgrade(name, weight, visibility, number, tags): a graded test")
        set_current(self.session)

    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            self.results[item.nodeid] = self._declare(item)
        order = {r.nodeid: tuple(int(p) if p.isdigit() else p for p in (r.number or "").split(".")) for r in self.results.values()}
        items.sort(key=lambda item: order[item.nodeid])
        self.results = {item.nodeid: self.results[item.nodeid] for item in items}

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
    def pytest_pyfunc_call(self, pyfuncitem):
        result = yield
        parts = pyfuncitem.stash.get(PARTS, None)
        if parts is not None:
            parts.finish()  # the failed parts fail the test, in its call phase
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        result = self.results.get(item.nodeid)
        if result is None:
            return report
        if report.failed:
            result.passed = False
            result.output = self._failure_output(result, call.excinfo)
        elif call.when == "call" and report.passed and result.passed is None:
            result.passed = True
        if call.when == "call" or report.failed:
            credit = item.stash.get(CREDIT, None)
            if credit is not None and credit.fraction is not None:
                result.fraction = credit.fraction
            printed = "".join(self.session.output)
            if printed and result.passed:
                result.output = "Your code printed:\n" + printed
        return report

    def _failure_output(self, result: TestResult, excinfo) -> str:
        exc = excinfo.value if excinfo else None
        if isinstance(exc, AssertionError):
            message = str(exc) or "check failed"
        elif exc is not None and isinstance(exc, pytest.skip.Exception):
            message = str(exc.msg)
        elif isinstance(exc, EngineFailure):
            self.session.engine_failure = self.session.engine_failure or exc
            return MSG_NOT_GRADED
        else:
            message = MSG_INTERNAL.format(type=type(exc).__name__)
            self.internal_errors.append(f"{result.name}:\n{''.join(traceback.format_exception(exc))}")
        if result.hide_errors:
            message = result.hide_errors
        elif self.session.calls and not isinstance(exc, SubmissionError):
            message += f"\nChecked with: {self.session.calls[-1]}"
        printed = "".join(self.session.output)
        if printed:
            message += "\nYour code printed:\n" + printed
        if len(message) > MAX_TEST_OUTPUT:
            message = message[:MAX_TEST_OUTPUT] + "\n... (truncated)"
        return message

    def pytest_sessionfinish(self, session, exitstatus):
        # every process that ran student code dies before any result is written
        self.session.close()
        set_current(None)

    def ordered(self) -> list[TestResult]:
        return list(self.results.values())


CREDIT = pytest.StashKey[Credit]()
PARTS = pytest.StashKey[Parts]()
