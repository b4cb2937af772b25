"""What a grader file uses: the submission as a remote module, the reference, ``check``.

    hw = student("hw")            # calls run in the sandboxed worker
    ref = reference("hw.py")       # the reference, imported in the grading process

    @check("viterbi: three-urn worked example", weight=2)
    def test_viterbi_urns():
        assert_close(hw.viterbi(A, B, pi, O), ref.viterbi(A, B, pi, O), check_dtype="kind")

Every failure caused by the submission (not submitted, syntax error, missing name,
exception, timeout, dead worker, a value that cannot travel) is a :class:`SubmissionError`
whose message is meant for the student.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlgrade import preservation, refusals, wire
from mlgrade.budget import TimeBudget
from mlgrade.loading import ModuleSource, names_used
from mlgrade.memo import MemoizedModule
from mlgrade.sandbox import CallTimeout, EngineFailure, Sandbox, WorkerDied
from mlgrade.worker_errors import ErrorKind

__all__ = ["SESSION", "SubmissionError", "assert_unchanged", "attach", "check", "current", "detach", "fetch", "per_submission", "reference", "refuse", "student", "GradingSession"]

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
MSG_DIED = "{call} stopped the worker: {reason}"
MSG_TIMEOUT = "{call} {reason}"
MSG_MISSING = "{file} does not define `{name}`"
MSG_LOAD = "{file} could not be loaded: {detail}"
MSG_RAISED = "{call} raised {type}: {message}"
MSG_NO_GPU = ("The grader has no GPU: do not call .cuda() or use device='cuda' unconditionally; "
              "use the device of the input (x.device, e.g. torch.zeros(..., device=x.device)) or the CPU.")
# what torch says when code asks for a GPU that is not there (CPU build, no driver, no device)
CUDA_SIGNS = ("Torch not compiled with CUDA enabled", "NVIDIA driver", "no CUDA GPUs are available",
              "CUDA driver", "CUDA error", "cuda:0")


class SubmissionError(AssertionError):
    """A failure of the submission, with a message for the student."""


@dataclass
class GradingSession:
    """One submission being graded: its modules, its sandbox, and the calls of the current test."""

    assignment: object
    modules: dict[str, ModuleSource]
    sandbox: Sandbox | None
    calls: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    memo: dict = field(default_factory=dict)  # results computed once per submission (per_submission)
    budget: TimeBudget | None = None

    def __post_init__(self):
        if self.budget is None:
            limits = self.sandbox.limits if self.sandbox is not None else self.assignment.limits
            self.budget = TimeBudget(limits.lost_seconds, limits.budget_seconds, limits.call_timeout)

    @property
    def engine_failure(self) -> EngineFailure | None:
        """The engine's failure, latched once by the sandbox: nothing is graded after it."""
        return self.sandbox.failure if self.sandbox is not None else None

    def module(self, name: str) -> ModuleSource:
        if name not in self.modules:
            raise KeyError(f"the assignment has no file for module {name!r} (files: {', '.join(self.modules)})")
        return self.modules[name]

    def begin_test(self) -> None:
        self.calls.clear()
        self.output.clear()

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()


SESSION = pytest.StashKey[GradingSession]()
# the pytest run grading in this thread (its config's stash holds the GradingSession), between
# attach() and detach(); a context variable, so that two threads grading at once never mix
_RUN: ContextVar[pytest.Config | None] = ContextVar("mlgrade_grading_run", default=None)


def current() -> GradingSession:
    """The submission being graded, found in the stash of the pytest run grading it."""
    config = _RUN.get()
    session = config.stash.get(SESSION, None) if config is not None else None
    if session is None:
        raise RuntimeError("no submission is being graded (run graders through `mlgrade run` or `mlgrade check`)")
    return session


def attach(config: pytest.Config, session: GradingSession) -> Token:
    """``session`` is what the run of ``config`` grades: in its stash, and current() in this thread."""
    config.stash[SESSION] = session
    return _RUN.set(config)


def detach(config: pytest.Config, token: Token) -> None:
    _RUN.reset(token)
    del config.stash[SESSION]


def _describe_call(name: str, args, kwargs) -> str:
    parts = [wire.describe(a) for a in args] + [f"{k}={wire.describe(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _missing_message(module: ModuleSource | None, call: str, error: dict) -> str:
    if module is None:
        return f"{call}: {error.get('message', '')}"
    return error.get("message", "").replace(f"{module.name} has no attribute", f"{module.file} does not define")


def _load_message(module: ModuleSource | None, call: str, error: dict) -> str:
    return MSG_LOAD.format(file=module.file if module else "the submission", detail=_load_detail(error))


def _about_call(module: ModuleSource | None, call: str, error: dict) -> str:
    return f"{call}: {error.get('message', '')}"


def _exception_message(module: ModuleSource | None, call: str, error: dict) -> str:
    if error.get("type") == "NotImplementedError":
        return f"{call.split('(')[0]} is not implemented yet (it raises NotImplementedError)"
    if error.get("type") == "SystemExit":
        return f"{call} called sys.exit({error.get('message', '')}) instead of returning a value"
    message = MSG_RAISED.format(call=call, type=error.get("type"), message=error.get("message", ""))
    if any(sign in error.get("message", "") for sign in CUDA_SIGNS):
        message += "\n" + MSG_NO_GPU
    if error.get("traceback"):
        message += "\nTraceback (your code, most recent call last):\n" + error["traceback"]
    return message


# how each kind of worker error is worded for the student: every ErrorKind has its entry
# (tests/test_grading.py holds it to that)
ERROR_WORDING = {
    ErrorKind.EXCEPTION: _exception_message,
    ErrorKind.LOAD: _load_message,
    ErrorKind.MISSING: _missing_message,
    ErrorKind.UNSUPPORTED: _about_call,
    ErrorKind.TYPE: _about_call,
    ErrorKind.SHAPE: _about_call,
    ErrorKind.LAYER: _about_call,
    ErrorKind.STATE: _about_call,
}


def error_message(module: ModuleSource | None, call: str, error: dict) -> str:
    """What the student reads for an error the worker reported (its kind checked by the sandbox)."""
    return ERROR_WORDING[ErrorKind(error["kind"])](module, call, error)


def _load_detail(error: dict) -> str:
    detail = f"{error.get('type')}: {error.get('message')}"
    if error.get("traceback"):
        detail += "\n" + error["traceback"]
    elif error.get("line"):
        detail = f"{error.get('file')}, line {error['line']}: {detail}"
    return detail


def _run(module_name: str, probe: str, display: str, timeout: float | None, **kwargs):
    session = current()
    if session.engine_failure is not None:
        raise session.engine_failure
    module = session.module(module_name) if module_name else None
    if module and module.error:
        raise SubmissionError(module.error.message)
    target = kwargs.get("target") or []
    name = target[1] if len(target) > 1 else None  # the submission's top-level function or class
    if module and name in module.unavailable:  # a notebook function that still calls solution.f
        raise SubmissionError(module.unavailable[name])
    call = display
    if module:
        session.calls.append(call)
    sandbox = session.sandbox
    refusal = session.budget.refusal(name)
    if refusal:
        raise SubmissionError(refusal)
    start = time.monotonic()  # what a WorkerDied is charged from, whichever step raised it
    try:
        sandbox.ensure_started()
        if module and module_name in sandbox.load_errors:
            raise SubmissionError(error_message(module, call, sandbox.load_errors[module_name]))
        start = time.monotonic()
        reply = sandbox.call(probe, timeout=timeout, **kwargs)
    except WorkerDied as exc:
        _keep_output(session, exc.output)
        timed_out = isinstance(exc, CallTimeout)
        session.budget.failed(name, time.monotonic() - start, "timed out" if timed_out else "stopped the worker",
                              exc.reason)
        raise SubmissionError((MSG_TIMEOUT if timed_out else MSG_DIED).format(call=call, reason=exc.reason)) from None
    if not reply.ok and reply.error.get("type") == "MemoryError":
        session.budget.failed(name, reply.seconds, "ran out of memory", "MemoryError at the sandbox's memory limit")
    else:
        session.budget.completed(reply.seconds)
    _keep_output(session, reply.output)
    if not reply.ok:
        raise SubmissionError(error_message(module, call, reply.error))
    return reply.value


def _keep_output(session: GradingSession, output: str) -> None:
    if output:
        session.output.append(output)


@dataclass
class CallResult:
    value: object
    # positions or keyword names of the arguments that came back from the worker different
    # from what the grading process sent (compared here: see mlgrade.preservation)
    mutated: list


class RemoteFunction:
    """A function or class of the submission; calling it runs it in the worker."""

    def __init__(self, module: str, path: tuple[str, ...], timeout: float | None = None):
        self._module, self._path, self._timeout = module, path, timeout

    @property
    def name(self) -> str:
        return ".".join(self._path)

    def within(self, seconds: float) -> "RemoteFunction":
        """The same function with another wall-clock limit per call."""
        return RemoteFunction(self._module, self._path, seconds)

    def call(self, *args, **kwargs) -> CallResult:
        """Call in the worker: the value, and which arguments the call modified in place."""
        out, mutated = self._call(args, kwargs, keep=False)
        return CallResult(out["value"], mutated)

    def _call(self, args, kwargs, keep: bool):
        """The call probe's reply and the arguments it modified, both verdicts made here.

        The fingerprints of the arguments are taken before they leave (see
        :mod:`mlgrade.preservation`); the worker sends the argument objects back as they are
        after the call, and the imports of refused modules it recorded (see :func:`refuse`).
        """
        sent = preservation.snapshot(args, kwargs)
        refused = _refusals_of(self._module, self._path)
        extra = {"send_back": list(sent)} if sent else {}
        if refused:
            extra["refused"] = sorted(refused)
        out = _run(self._module, "call", _describe_call(self.name, args, kwargs), self._timeout,
                   target=[self._module, *self._path], args=list(args), kwargs=kwargs, keep=keep, **extra)
        if refused:
            _refuse_imports(self._module, self.name, refused, out.get("imports"), out.get("calls"))
        return out, preservation.modified(sent, out.get("args"))

    def __call__(self, *args, **kwargs):
        return self.call(*args, **kwargs).value

    def remote(self, *args, **kwargs) -> wire.Ref:
        """Call, keeping the result in the worker; index the Ref and pass it to later calls."""
        out, mutated = self._call(args, kwargs, keep=True)
        return wire.Ref(out["value"]["ref"], mutated=tuple(mutated))

    def grad(self, *args, wrt=(), grad_output=None, **kwargs):
        """(output, [gradient of each argument in ``wrt``, None where none reached it]), computed in the
        grading process from the graph the worker traced on other inputs (:mod:`mlgrade.gradients`)."""
        from mlgrade.gradients import gradient

        return gradient(self._module, self._path, self.name, args, kwargs, wrt=wrt, grad_output=grad_output,
                        timeout=self._timeout)

    def _probe(self, probe: str, display: str, **kwargs):
        """Run the trusted probe ``probe`` of :mod:`mlgrade.probes` on this callable (``target``)."""
        return _run(self._module, probe, display, self._timeout, target=[self._module, *self._path], **kwargs)

    def parameters(self) -> list | None:
        """[name, kind, has_default] per parameter of the submitted callable."""
        return _run(self._module, "signature", f"inspect.signature({self.name})", self._timeout,
                    target=[self._module, *self._path])

    def __getattr__(self, attr: str) -> "RemoteFunction":
        if attr.startswith("_"):
            raise AttributeError(attr)
        return RemoteFunction(self._module, self._path + (attr,), self._timeout)


class StudentModule:
    """The submitted module ``name`` (file stem), as seen from the grading process."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> RemoteFunction:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return RemoteFunction(self._name, (attr,))

    def uses(self, *names: str) -> list[str]:
        """Places in the submitted source (what the worker runs) that mention any of ``names``."""
        module = current().module(self._name)
        if module.error:
            raise SubmissionError(module.error.message)
        return [f"`{n}` ({label}, line {line})" for n, label, line in names_used(module.chunks, set(names))]


MSG_MODIFIED = ("{function} modified its argument(s) {names} in place; "
                "the caller's arrays must stay as they were (work on a copy)")
MSG_REFUSED = "{function} must not use {what}: found {found}"
MSG_IMPORTED = "`{name}` (imported while your code ran, {where})"
MSG_CALLED = "`{name}` (called while your code ran, {where})"
_REFUSALS = "mlgrade.grading.refuse"  # key in GradingSession.memo: {(module, function): {name: what}}


def assert_unchanged(result: CallResult | wire.Ref, function: str, names: list[str]) -> None:
    """Fail when the call modified any of its arguments in place (``names`` by position).

    ``result`` is what ``.call(...)`` or ``.remote(...)`` returned. The verdict was made in
    the grading process when the call returned: each argument the grader sent was
    fingerprinted before it left (type, dtype, shape, sha256 of its bits), the worker sent
    the argument objects back as they were after the call, and the two were compared here
    (see :mod:`mlgrade.preservation` for why nothing the worker says about itself, such as a
    digest, is used). Arguments that were Refs to objects kept in the worker are not judged.
    """
    if isinstance(result, wire.Ref) and result.path:
        raise TypeError("assert_unchanged needs the Ref returned by .remote(...) itself, not an item of it")
    mutated = [names[k] if isinstance(k, int) and k < len(names) else str(k) for k in result.mutated]
    if mutated:
        raise SubmissionError(MSG_MODIFIED.format(function=function, names=", ".join(mutated)))


def refuse(module: StudentModule, function: str, names: dict[str, str]) -> None:
    """Fail when the submission uses a refused API; ``names`` maps name -> what it is.

    Two checks, both judged in the grading process. Now: the submitted source, for any of
    ``names`` (imports, attributes, calls). Then, for the rest of this submission's grading,
    every ``.call``/``.remote`` of ``function`` also fails when a module among ``names`` was
    imported while the submission loaded or during a call of ``function``: computed names
    (``importlib.import_module("skl" + "earn")``) that the source does not show. The worker
    records imports from before the first line of student code on (an audit hook, and the
    new entries of ``sys.modules`` around each call: :mod:`mlgrade.refusals`); it only
    reports them. A call that raises fails with its exception, as before.

    A refusal is a teaching rule, not a security boundary: student code runs in the same
    process as that hook and can defeat any in-process guard (empty the records, reach a
    module already imported elsewhere, name a function through getattr). It keeps honest
    shortcuts out; it does not stop a determined attacker, whose code still has to compute
    the right values to earn a point.
    """
    current().memo.setdefault(_REFUSALS, {})[(module._name, function)] = dict(names)
    found = module.uses(*names)
    if found:
        first = found[0].split("`")[1]
        raise SubmissionError(MSG_REFUSED.format(function=function, what=names[first], found=", ".join(found[:3])))


def _refusals_of(module_name: str, path: tuple) -> dict[str, str]:
    """{name: what} refused (by :func:`refuse`) to the submitted callable ``path`` of ``module_name``."""
    refused = {}
    for (module, function), names in current().memo.get(_REFUSALS, {}).items():
        if module == module_name and function in (path[0], ".".join(path)):
            refused.update(names)
    return refused


def _refuse_imports(module_name: str, function: str, refused: dict[str, str], imports, calls=None) -> None:
    """Fail when the worker's records of imports and calls break a refusal (see :func:`refuse`)."""
    hits = [(MSG_IMPORTED, *hit) for hit in refusals.refused_imports(imports, refused, function)] + \
           [(MSG_CALLED, *hit) for hit in refusals.refused_imports(calls, refused, function)]
    if hits:
        file = current().module(module_name).file
        found = [template.format(name=name, where=f"when {file} was loaded" if context == refusals.LOAD
                                 else f"in {context}") for template, name, context in hits[:3]]
        raise SubmissionError(MSG_REFUSED.format(function=function.split(".")[0], what=refused[hits[0][1]],
                                                 found=", ".join(found)))


def per_submission(fn):
    """Decorator: compute ``fn(*args)`` once per graded submission (arguments must be hashable).

    For an expensive call several tests look at (a training run); an exception is not
    kept, so every test that needs the value fails with the same message.
    """
    def wrapper(*args):
        memo = current().memo
        key = (fn.__module__, fn.__qualname__, args)
        if key not in memo:
            memo[key] = fn(*args)
        return memo[key]

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return wrapper


def student(module_name: str) -> StudentModule:
    return StudentModule(module_name)


def fetch(ref: wire.Ref):
    """The value of an object kept in the worker by :meth:`RemoteFunction.remote`."""
    return _run(None, "fetch", "fetching a kept result", None, ref=ref)


_REFERENCES: dict[str, object] = {}


def reference(file_name: str, memo: bool = True):
    """Import ``reference/<assignment>/<file_name>`` into the grading process (cached).

    Its functions remember their answers to plain-data questions across submissions (see
    :mod:`mlgrade.memo`); ``memo=False`` gives the bare module, for a reference that reads
    state a grader changes between calls.
    """
    path = Path(current().assignment.reference_dir or "") / file_name
    key = f"mlgrade_reference.{path.parent.name}.{path.stem}"
    if key not in sys.modules:
        if not path.is_file():
            raise FileNotFoundError(f"no reference {path} (graders need the instructor's checkout or zip)")
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
        _REFERENCES.pop(key, None)
    if not memo:
        return sys.modules[key]
    if key not in _REFERENCES:
        _REFERENCES[key] = MemoizedModule(sys.modules[key])
    return _REFERENCES[key]


def check(name: str, *, weight: float = 1.0, visibility: str = "visible", number: str | None = None, tags=()):
    """Declare a graded test: its name (``"<contract name>: <what it checks>"``), points and visibility.

    ``name`` may use the test's parameters: ``"viterbi: random HMM, T={T}"``. Equivalent
    gradescope-utils decorators (``@weight``, ``@visibility``, ``@number``, ``@tags``) work too.
    """
    if visibility not in VISIBILITIES:
        raise ValueError(f"check({name!r}): visibility must be one of {VISIBILITIES}, not {visibility!r}")
    if ": " not in name:
        raise ValueError(f"check({name!r}): a name is '<contract name>: <what it checks>'")
    return pytest.mark.mlgrade(name=name, weight=float(weight), visibility=visibility, number=number, tags=tuple(tags))
