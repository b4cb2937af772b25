"""The sandboxed worker: the only process that runs student code.

Started by :mod:`mlgrade.sandbox` as ``python -I -m mlgrade.worker CONFIG``, or forked by a fork
server (:mod:`mlgrade.forkserver_loop`). It confines itself before any student code exists in it
(:mod:`mlgrade.confinement`), imports numpy and torch once, loads the submitted modules, and then
answers requests on one pipe with replies on another, both in :mod:`mlgrade.wire` frames (:func:`serve`).

Nothing here is trusted by the grading process: student code shares this process and can
change any of it. What matters is that the grading process only ever decodes data from it.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
import types

from mlgrade.worker_errors import ErrorKind


def _student_frames(tb) -> str:
    """The traceback restricted to frames of student code (no worker or library internals)."""
    frames = [f for f in traceback.extract_tb(tb) if "/mlgrade/" not in f.filename and not f.filename.startswith("<frozen")]
    return "".join(traceback.format_list(frames[-8:]))


def error_record(exc: BaseException, kind: ErrorKind = ErrorKind.EXCEPTION) -> dict:
    try:
        message = str(exc)
    except Exception:  # a student exception whose __str__ raises
        message = "<unprintable>"
    record = {"kind": kind.value, "type": type(exc).__name__[:200], "message": message[:2000]}
    if isinstance(exc, SyntaxError):
        record.update(file=str(exc.filename), line=int(exc.lineno or 0))
    else:
        record["traceback"] = _student_frames(exc.__traceback__)[-4000:]
    return record


class Worker:
    def __init__(self, probes, missing: list[str] = ()):
        self.probes = probes  # the table bound before any student code (mlgrade.probes.bind)
        self.missing = list(missing)  # what its confinement could not apply (the hello's answer)
        self.modules: dict[str, types.ModuleType] = {}
        self.load_errors: dict[str, dict] = {}
        self.objects: dict[int, object] = {}

    def resolve(self, ref_id: int, keys: tuple):
        obj = self.objects[ref_id]
        for key in keys:
            obj = obj[key]
        return obj

    def load(self, modules: list) -> dict:
        """Execute the submitted modules; imports they make are recorded from the first line on.

        The import hook of :mod:`mlgrade.refusals` is set before any student code runs
        (a record for ``refuse``, which a submission can defeat: a teaching rule only).
        """
        import linecache

        from mlgrade import refusals

        refusals.install()
        result = {}
        for spec in modules:
            name = spec["name"]
            module = types.ModuleType(name)
            module.__file__ = spec["file"]
            sys.modules[name] = module
            try:
                for label, source in spec["chunks"]:
                    linecache.cache[label] = (len(source), None, source.splitlines(True), label)
                    with refusals.during(refusals.LOAD):
                        exec(compile(source, label, "exec", dont_inherit=True), module.__dict__)
            except BaseException as exc:  # SystemExit at import too
                result[name] = error_record(exc, ErrorKind.LOAD)
                self.load_errors[name] = result[name]
            else:
                result[name] = None
            self.modules[name] = module
        return result

    def handle(self, request: dict):
        op = request["op"]
        if op == "hello":
            return {"pid": os.getpid(), "uid": os.getuid(), "missing": self.missing}
        if op == "load":
            return self.load(request["modules"])
        if op == "probe":
            probe = self.probes.get(request["probe"]) if type(request["probe"]) is str else None
            if probe is None:
                raise ValueError(f"unknown probe {request['probe']!r}")
            return probe(self, **request["kwargs"])
        raise ValueError(f"unknown op {op!r}")



# what a worker keeps of mlgrade: itself and the trusted code beside it; the rest (runner, cli,
# results, grading, course) belongs to the grading process
WORKER_MODULES = frozenset({"mlgrade", "mlgrade.worker", "mlgrade.worker_errors", "mlgrade.probes",
                            "mlgrade.wire", "mlgrade.refusals", "mlgrade.channel", "mlgrade.autograd_capture"})
# libraries of the grading process that a fork inherits and a fresh worker never imports
GRADING_LIBRARIES = frozenset({"pytest", "_pytest", "pluggy", "iniconfig", "rich", "pygments", "markdown_it", "mdurl",
                               "gradescope_utils", "nbformat", "nbconvert", "jupytext", "dask", "distributed"})
WORKER_ARGV = ["-m", "mlgrade.worker"]  # what `python -I -m mlgrade.worker` shows, without its config


class _InternalsRefused:
    """A meta path finder: importing mlgrade beyond the worker's own modules fails with a message.

    Teaching, not a boundary (a submission can remove it): hidden oracles live in graders/,
    which the worker's view masks; this makes the honest attempt fail loudly, not silently.
    """

    @staticmethod
    def find_spec(name, path=None, target=None):
        if (name == "mlgrade" or name.startswith("mlgrade.")) and name not in WORKER_MODULES:
            raise ImportError(f"a submission may not import {name}: mlgrade is the autograder, not a library "
                              "for your code", name=name)
        return None


def alike() -> None:
    """The same interpreter state for student code whatever started the grading.

    A worker forked from a fork server that was forked from `mlgrade check`, `run`, `grade`
    or pytest would otherwise see that process's command line and modules, and a submission
    could behave in self-check and attack in grading. Called before any student code.
    """
    sys.argv[:] = list(WORKER_ARGV)
    for name in list(sys.modules):
        top = name.partition(".")[0]
        if (top == "mlgrade" and name not in WORKER_MODULES) or top in GRADING_LIBRARIES:
            del sys.modules[name]
    package = sys.modules.get("mlgrade")
    for name, value in list(vars(package).items()) if package is not None else ():
        # submodules, and public names the grading process imported lazily (mlgrade.student)
        home = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if not name.startswith("__") and isinstance(home, str) and home.startswith("mlgrade.") \
                and home not in WORKER_MODULES:
            del vars(package)[name]
    sys.modules["__main__"] = types.ModuleType("__main__")
    sys.meta_path.insert(0, _InternalsRefused)


def serve(request_fd: int, reply_fd: int, missing: list[str]) -> None:
    """Answer requests until the grading process closes the request pipe (``missing``: what
    the worker's confinement could not apply). The probe table is bound, and the interpreter made
    alike for check and grading, before any student code."""
    from mlgrade import probes, wire
    from mlgrade.channel import Channel, ChannelClosed

    worker = Worker(probes.bind(), missing)
    alike()
    channel = Channel(request_fd, reply_fd)
    while True:
        try:
            request = wire.decode(channel.receive(), make_ref=worker.resolve)
        except ChannelClosed:
            os._exit(0)
        reply = {"id": request["id"]}
        try:
            reply["ok"], reply["value"] = True, worker.handle(request)
            payload = wire.encode(reply)
        except wire.UnsupportedValue as exc:
            payload = wire.encode({"id": request["id"], "ok": False, "error": {"kind": ErrorKind.UNSUPPORTED.value, "type": "UnsupportedValue", "message": str(exc)}})
        except BaseException as exc:
            from mlgrade.probes import ProbeError

            kind = exc.kind if isinstance(exc, ProbeError) else ErrorKind.EXCEPTION
            payload = wire.encode({"id": request["id"], "ok": False, "error": error_record(exc, kind)})
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        channel.send(payload)


def preload(modules: list[str]) -> None:
    """Import library modules before any student code; one that fails is the submission's to report."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def import_libraries(with_torch: bool, modules: list[str] = ()) -> None:
    import numpy  # noqa: F401  imported once, before any student code
    if with_torch:
        import torch

        torch.set_num_threads(1)
        # a first backward(grad_output) imports torch.fx's symbolic shapes (~0.4 s): paid here,
        # once per fork server, and in parallel with collection for a fresh worker
        leaf = torch.ones(2, requires_grad=True)
        (leaf * 2).backward(torch.ones(2))
        import torch.fx.experimental.proxy_tensor  # noqa: F401  make_fx, for gradient graphs (mlgrade.autograd_capture)
    preload(modules)
    from mlgrade import probes, wire  # noqa: F401


def main() -> None:
    cfg = json.loads(sys.argv[1])
    if cfg.get("zygote"):
        from mlgrade.forkserver_loop import zygote

        zygote(cfg)
        return
    from mlgrade.confinement import confine

    request_fd, reply_fd = cfg["fds"]
    missing = confine(cfg)
    import_libraries(cfg.get("torch", True))
    serve(request_fd, reply_fd, missing)


if __name__ == "__main__":
    main()
