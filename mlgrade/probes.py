"""Trusted probes: the small pieces of grading logic that must run beside student code.

Each probe runs in the worker (see :mod:`mlgrade.worker`) as ``probe(worker, **kwargs)``
and returns plain data; the grading process makes every verdict from that data. Probes
never judge: they call, differentiate, list and transplant.
"""
from __future__ import annotations

import hashlib
import inspect

from mlgrade import wire


class ProbeError(Exception):
    """A condition a probe reports by kind, e.g. a name the submission does not define."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def lookup(worker, target):
    module_name, *attrs = target
    if module_name in worker.load_errors:
        raise ProbeError("load", "module failed to load")
    obj = worker.modules[module_name]
    for attr in attrs:
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ProbeError("missing", f"{module_name} has no attribute {attr!r}") from None
    return obj


def _digest(value) -> str:
    try:
        return hashlib.sha256(wire.encode(value)).hexdigest()
    except wire.UnsupportedValue:
        return ""


def _keep(worker, value) -> dict:
    ref_id = len(worker.objects) + 1
    worker.objects[ref_id] = value
    return {"ref": ref_id, "type": type(value).__name__}


def call(worker, target, args=(), kwargs=None, keep=False):
    """Call ``target(*args, **kwargs)``; report which arguments the call modified in place."""
    kwargs = kwargs or {}
    fn = lookup(worker, target)
    if not callable(fn):
        raise ProbeError("missing", f"{'.'.join(target)} is not callable")
    named = list(enumerate(args)) + list(kwargs.items())
    before = {key: _digest(val) for key, val in named}
    value = fn(*args, **kwargs)
    mutated = [key for key, val in named if before[key] and _digest(val) != before[key]]
    if not keep:
        wire.encode(value, path="the returned value")  # names the culprit if it cannot travel
    return {"value": _keep(worker, value) if keep else value, "mutated": mutated}


def grad(worker, target, args=(), kwargs=None, wrt=(), grad_output=None):
    """Call ``target`` and backpropagate ``grad_output`` (or 1 for a scalar) into args ``wrt``.

    Returns the output and, per argument in ``wrt``, its gradient or None when no
    gradient reached it.
    """
    import torch

    kwargs = kwargs or {}
    fn = lookup(worker, target)
    leaves = []
    for i in wrt:
        arg = args[i] if isinstance(i, int) else kwargs[i]
        arg.requires_grad_(True)
        leaves.append(arg)
    out = fn(*args, **kwargs)
    wire.encode(out, path="the returned value")
    if not isinstance(out, torch.Tensor):
        return {"value": out, "grads": None}
    if out.requires_grad:
        if grad_output is None:
            if out.numel() != 1:
                raise ProbeError("shape", f"expected a scalar output to differentiate, got shape {tuple(out.shape)}")
            out.backward()
        else:
            out.backward(grad_output)
    return {"value": out, "grads": [leaf.grad for leaf in leaves]}


def signature(worker, target):
    """The parameter names and kinds of a callable, as strings."""
    fn = lookup(worker, target)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, p.default is not inspect.Parameter.empty] for p in sig.parameters.values()]


def fetch(worker, ref):
    """The value behind a :class:`~mlgrade.wire.Ref` (already resolved by the decoder)."""
    return ref
