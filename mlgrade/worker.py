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
    def __init__(self, missing: list[str] = ()):
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
        from mlgrade import probes

        op = request["op"]
        if op == "hello":
            return {"pid": os.getpid(), "uid": os.getuid(), "missing": self.missing}
        if op == "load":
            return self.load(request["modules"])
        if op == "probe":
            probe = getattr(probes, request["probe"])
            return probe(self, **request["kwargs"])
        raise ValueError(f"unknown op {op!r}")



def serve(request_fd: int, reply_fd: int, missing: list[str]) -> None:
    """Answer requests until the grading process closes the request pipe (``missing``: what
    the worker's confinement could not apply)."""
    from mlgrade import wire
    from mlgrade.channel import Channel, ChannelClosed

    worker = Worker(missing)
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
