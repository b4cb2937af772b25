"""The self-check's figures: the sheet's pictures drawn from a submission's own functions.

An assignment declares them in ``assignments/<id>/selfcheck.py`` (shipped to students, like the
public checks), each a function that draws on a matplotlib figure from what the submission's
functions return on public inputs::

    hw = student("hw")

    @figure("subpixel", "subpixel_conv on the sheet's worked example", size=(5, 4))
    def subpixel(fig):
        out = float_array(hw.subpixel_conv(A, K), name="subpixel_conv(A, K)", shape=(11, 11))
        fig.colorbar(fig.subplots().imshow(out, cmap="gray"))

The submission's calls run in its sandboxed worker, as in a grading, and come back as plain
arrays; matplotlib draws here, in the grading process, which never imports student code. A
figure that cannot be made (the function raised, timed out, returned the wrong shape) is a
message in its place, never a failed page. The same functions drawn from the reference
(:func:`write_reference_images`, ``mlgrade selfcheck-images <id>``) are the reference's
images, shipped beside them as ``assignments/<id>/selfcheck/<name>.png``: students get the
pictures, never the code or values of the hidden tests.
"""
from __future__ import annotations

import importlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from mlgrade.grading import GradingSession, attach, detach
from mlgrade.sandbox import EngineFailure, Sandbox

__all__ = ["Drawn", "FigureSpec", "declared", "draw_figures", "figure", "write_reference_images"]

MAX_PROBLEM = 1500  # characters of a figure's problem shown on the page
MSG_RAISED = "{title}: could not be drawn from what your code returned ({type}: {message})"
MSG_ENGINE = "The sandbox failed ({reason}): no figure could be made. This is not your code's fault."
MSG_NOT_LOADED = "nothing of the submission could be loaded"


@dataclass(frozen=True)
class FigureSpec:
    """One declared figure: ``name`` is its reference image's file stem (``selfcheck/<name>.png``)."""

    name: str
    title: str
    draw: Callable
    size: tuple[float, float] = (6.0, 4.0)  # inches, at ``dpi``
    caption: str = ""  # what it shows and from which public inputs; a shortened setting says so here
    dpi: int = 80


def figure(name: str, title: str, *, size=(6.0, 4.0), caption: str = "", dpi: int = 80):
    """Declare a self-check figure: ``draw(fig)`` draws on a :class:`matplotlib.figure.Figure`."""
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"figure({name!r}): a name is a file stem of letters, digits, - and _")

    def declare(draw: Callable) -> FigureSpec:
        return FigureSpec(name, title, draw, (float(size[0]), float(size[1])), caption, dpi)

    return declare


@dataclass
class Drawn:
    """A figure as drawn from one submission: its PNG, or why there is none."""

    spec: FigureSpec
    png: bytes | None
    problem: str | None
    seconds: float


def declared(assignment) -> list[FigureSpec]:
    """The assignment's figures in the order of its ``selfcheck.py`` (none when it has no such file).

    Imported as ``<package>.selfcheck`` with the assignment importable: call within
    ``assignment.importable()``.
    """
    if not assignment.selfcheck_file.is_file():
        return []
    name = f"{assignment.package}.selfcheck"
    module = importlib.import_module(name)  # another course's package of that name was replaced
    found = [v for v in vars(module).values() if isinstance(v, FigureSpec)]
    names = [f.name for f in found]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ValueError(f"{assignment.selfcheck_file}: two figures named {', '.join(doubled)}")
    return found


def _render(fig, dpi: int) -> bytes:
    buffer = io.BytesIO()
    # no Software entry: the same figure gives the same bytes on every run (a diffable reference)
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _first_lines(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_PROBLEM else text[:MAX_PROBLEM] + " ..."


class _Drawing:
    """The figures' run, as a grading's pytest run is to :func:`mlgrade.grading.attach`: the
    session is found in its stash (the figures are drawn outside pytest)."""

    def __init__(self):
        self.stash = pytest.Stash()


def _draw(spec: FigureSpec, session: GradingSession) -> Drawn:
    from matplotlib.figure import Figure  # no pyplot: nothing here picks a backend or a window

    start = time.monotonic()
    session.begin_test()
    fig = Figure(figsize=spec.size, layout="constrained")
    try:
        if session.engine_failure is not None:
            raise session.engine_failure
        spec.draw(fig)
        return Drawn(spec, _render(fig, spec.dpi), None, time.monotonic() - start)
    except EngineFailure as exc:
        problem = MSG_ENGINE.format(reason=exc.reason)
    except AssertionError as exc:  # SubmissionError, a Mismatch of compare: worded for the student
        problem = str(exc) or type(exc).__name__
    except Exception as exc:  # what came back could not be drawn (a shape matplotlib refused...)
        problem = MSG_RAISED.format(title=spec.title, type=type(exc).__name__, message=str(exc)[:500])
    return Drawn(spec, None, _first_lines(problem), time.monotonic() - start)


def draw_figures(assignment, submission_dir: Path, zygote=None) -> list[Drawn]:
    """Every declared figure drawn from the submission in ``submission_dir`` (its calls in a worker).

    ``zygote``: a fork server, taken before anything of a submission was loaded here (see
    :mod:`mlgrade.runner`); without one, the process's kept one or one of this drawing's own.
    """
    from mlgrade import runner

    if not assignment.selfcheck_file.is_file():
        return []  # figures are optional: no worker for none
    own = None
    if zygote is None:
        zygote = runner.kept_fork_server(assignment)
        if zygote is None:
            zygote = own = runner.fork_server(assignment)
    try:
        modules = assignment.load_submission(Path(submission_dir))
        runnable = [m.spec() for m in modules if m.error is None]
        # public inputs only: no hidden test is in reach, as for `mlgrade check`
        sandbox = Sandbox(runnable, assignment.limits, assignment.protected_paths(), zygote=zygote,
                          require_isolation=False) if runnable else None
        if sandbox:
            sandbox.start_async()
        session = GradingSession(assignment, {m.name: m for m in modules}, sandbox)
        run = _Drawing()
        token = attach(run, session)
        try:
            with assignment.importable():
                return [_draw(spec, session) for spec in declared(assignment)]
        finally:
            detach(run, token)
            session.close()
    finally:
        if own is not None:
            own.close()


def write_reference_images(assignment, folder: Path | None = None) -> tuple[list[Path], list[str]]:
    """Draw every figure from the reference into ``folder`` (default ``assignments/<id>/selfcheck/``).

    Returns (the images written, problems): a figure the reference cannot draw is a problem of
    the figure's code, and its old image is left as it was. Images of figures no longer
    declared are removed.
    """
    if not assignment.reference_dir.is_dir():
        raise FileNotFoundError(f"no reference for {assignment.id} under {assignment.reference_dir} "
                                "(the reference images are made in the instructor's course)")
    folder = Path(folder) if folder else assignment.selfcheck_images
    drawn = draw_figures(assignment, assignment.reference_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written, problems = [], []
    for d in drawn:
        if d.png is None:
            problems.append(f"{d.spec.name}: the reference could not draw it: {d.problem}")
            continue
        path = folder / f"{d.spec.name}.png"
        path.write_bytes(d.png)
        written.append(path)
    names = {f"{d.spec.name}.png" for d in drawn}
    for stale in sorted(folder.glob("*.png")):
        if stale.name not in names:
            stale.unlink()
    return written, problems
