"""Whether a call left its arguments as they were, judged in the grading process.

Before a call, :func:`fingerprint` reduces every argument the grading process sends (and
that a call could change in place: arrays, tensors, lists, dicts) to its type, dtype, shape
and a sha256 of its bits, computed here. The worker sends the argument objects back as
they are after the call, and :func:`modified` compares the two, here too.

Why this and not a digest computed beside the call: student code shares the worker's
process and can replace anything in it (``mlgrade.probes``, ``hashlib``), so a digest or a
"mutated" flag it reports is the student's word. Here the worker reports no conclusion,
only the values; the bytes are decoded by :mod:`mlgrade.wire` and compared with a
fingerprint the worker never saw. Patching a digest, a hash function or a flag earns
nothing. What no in-process design can exclude is a worker that deliberately sends back
values it does not hold: to hide a write it must keep an untouched copy of each input and
answer with that copy, which is keeping the caller's data intact by other means.
"""
from __future__ import annotations

import hashlib
import math
import sys

import numpy as np

from mlgrade import wire

__all__ = ["fingerprint", "modified", "snapshot"]


def _torch():
    return sys.modules.get("torch")


def _bits(arr: np.ndarray) -> str:
    """sha256 of the little-endian bits of ``arr``; every NaN counts as the same NaN."""
    a = np.ascontiguousarray(arr)
    if a.dtype.kind in "fc":
        nan = np.isnan(a)
        if nan.any():
            a = np.where(nan, np.array(np.nan, dtype=a.dtype), a)
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
    return hashlib.sha256(a.reshape(-1).view(np.uint8)).hexdigest()


def fingerprint(value):
    """What "unchanged" compares: type, dtype, shape and the exact bits of every element.

    Bitwise, so -0.0 differs from 0.0 and a changed dtype or shape (``x.shape = ...``) is a
    change; NaN equals NaN. A tensor's ``requires_grad`` flag is not part of it.
    """
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        t = (t.to_dense() if t.is_sparse else t).resolve_conj().resolve_neg().contiguous()
        arr = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()  # bfloat16 -> float32 is exact
        return ("tensor", str(t.dtype), tuple(t.shape), _bits(arr))
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        return ("ndarray" if isinstance(value, np.ndarray) else "scalar", arr.dtype.name, arr.shape, _bits(arr))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(fingerprint(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, fingerprint(v)) for k, v in value.items()))
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if value is None or isinstance(value, (bool, int, str, complex)):
        return (type(value).__name__, repr(value))
    return ("object", type(value).__name__, id(value))  # never equal to anything decoded


def _changeable(value) -> bool:
    """Whether a call could modify ``value`` in place and the grading process holds all of it (no Ref)."""
    torch = _torch()
    if isinstance(value, wire.Ref):
        return False
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        return not any(_holds_ref(v) for v in items)
    if isinstance(value, tuple):
        return any(_changeable(v) for v in value) and not any(_holds_ref(v) for v in value)
    return isinstance(value, np.ndarray) or (torch is not None and isinstance(value, torch.Tensor))


def _holds_ref(value) -> bool:
    if isinstance(value, wire.Ref):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_ref(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_ref(v) for v in value.values())
    return False


def snapshot(args, kwargs) -> dict:
    """{position or keyword: fingerprint} of the arguments a call could change, taken before it.

    Arguments that are (or hold) a Ref to an object kept in the worker are left out: the
    grading process has no original of them to compare with.
    """
    named = list(enumerate(args)) + list(kwargs.items())
    return {key: fingerprint(value) for key, value in named if _changeable(value)}


def modified(sent: dict, returned) -> list:
    """The keys of ``sent`` whose argument came back different (or did not come back).

    ``returned`` is what the worker sent: [[key, ok, value], ...], ``ok`` False for an
    argument replaced by something that cannot travel. Anything malformed counts as changed.
    """
    back = {}
    if isinstance(returned, list):
        for entry in returned:
            if isinstance(entry, list) and len(entry) == 3 and type(entry[0]) in (int, str) and entry[1] is True:
                back.setdefault(entry[0], entry[2])
    return [key for key, expected in sent.items() if key not in back or fingerprint(back[key]) != expected]
