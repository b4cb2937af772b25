"""Comparison of a submission's values with expected ones: one entry point, assert_close.

Modelled on torch.testing.assert_close: each kind of expected value (tensor, array, number,
sequence, mapping) has a small comparison function; each checks attributes first (type,
shape, dtype), then values, and returns an error record; only :func:`assert_close` raises.
Messages follow numpy.testing: tolerances, count and share of mismatches, the largest
absolute and relative difference with its index, a few offending entries, each pair of
values printed with as many digits as it takes to show that they differ; every part bounded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Mismatch", "assert_close", "assert_dtypes", "unpack", "float_array", "DEFAULT_TOLERANCES"]

# (rtol, atol) by dtype, as torch.testing uses them
DEFAULT_TOLERANCES = {
    "float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7), "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7),
}
SHOWN_ENTRIES = 4


class Mismatch(AssertionError):
    """A submitted value differs from the expected one; the message says how."""


@dataclass
class Error:
    path: str
    message: str


def _torch():
    import sys

    return sys.modules.get("torch")


def _is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _article(name: str) -> str:
    return "an" if name[:1] in "aeio" else "a"


def _kind(x) -> str:
    if _is_tensor(x):
        return "a torch.Tensor"
    if isinstance(x, np.ndarray):
        return "a numpy.ndarray"
    if x is None:
        return "None"
    if isinstance(x, np.generic):
        return f"a numpy.{type(x).__name__}"
    name = type(x).__name__
    return f"{_article(name)} {name}"


def _is_bool(x) -> bool:
    """A Python or numpy bool (a 0-d bool array too): never a number here."""
    return isinstance(x, (bool, np.bool_)) or isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype == bool


def _expected_array(expected: np.ndarray) -> str:
    name = expected.dtype.name
    return f"expected {_article(name)} {name} numpy.ndarray of shape {tuple(expected.shape)}"


def _fmt(v, digits: int = 6) -> str:
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}g}"
    return repr(v.item() if hasattr(v, "item") else v)


def _fmt_pair(a, e) -> tuple[str, str]:
    """Both values with as many significant digits (6 to 17) as it takes to tell them apart."""
    for digits in range(6, 18):
        got, expected = _fmt(a, digits), _fmt(e, digits)
        if got != expected:
            break
    return got, expected


def _index(idx) -> str:
    return "(" + ", ".join(str(int(i)) for i in idx) + ")" if len(idx) != 1 else f"[{int(idx[0])}]"


@dataclass
class Options:
    rtol: float | None
    atol: float | None
    equal_nan: bool
    check_dtype: bool | str


def _values(actual: np.ndarray, expected: np.ndarray, opts: Options, dtype_name: str) -> str | None:
    """Compare two same-shape arrays; the numpy.testing-style report, or None when close."""
    rtol, atol = DEFAULT_TOLERANCES.get(dtype_name, (0.0, 0.0))
    rtol = rtol if opts.rtol is None else opts.rtol
    atol = atol if opts.atol is None else opts.atol
    if expected.dtype == bool:  # the callers checked that the actual values are bools too
        a, e = actual, expected
        bad = a != e
        if not bad.any():
            return None
        return _report(bad, a, e, None, None, "Mismatched")
    kind = np.complex128 if np.iscomplexobj(actual) or np.iscomplexobj(expected) else np.float64
    a = actual.astype(kind)
    e = expected.astype(kind)
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    if (a_nan & ~e_nan).any():
        bad = a_nan & ~e_nan
        return _report(bad, a, e, None, None, "NaN where a number was expected", nan=True)
    if (np.isinf(a) & ~np.isinf(e)).any():
        bad = np.isinf(a) & ~np.isinf(e)
        return _report(bad, a, e, None, None, "inf where a finite number was expected", nan=True)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
        same_inf = np.isinf(a) & np.isinf(e) & (a == e)
        diff = np.where(same_inf, 0.0, diff)
        bad = ~(diff <= atol + rtol * np.abs(e)) | (np.isinf(e) & ~same_inf)  # rtol * inf would admit any value
        if opts.equal_nan:
            bad &= ~(a_nan & e_nan)
        else:
            bad |= e_nan & ~a_nan
    if not bad.any():
        return None
    return _report(bad, a, e, rtol, atol, "Not equal to tolerance")


def _times(k: float) -> str:
    text = f"{k:.3g}"
    return text + ".0" if "." not in text and "e" not in text else text


def _pattern(a, e) -> str:
    """What the mismatched values have in common, in words a student acts on ("2.0 times too
    large", "the sign is flipped", "every value 0.5 too small"), or ""."""
    a, e = np.ravel(a), np.ravel(e)
    if not a.size or not np.isrealobj(a) or not (np.isfinite(a).all() and np.isfinite(e).all()):
        return ""
    with np.errstate(divide="ignore", invalid="ignore"):
        if (e != 0).all() and (a != 0).all():
            ratio = a / e
            lo, hi = ratio.min(), ratio.max()
            if np.sign(lo) == np.sign(hi) and abs(hi - lo) <= 1e-3 * abs(hi):
                k = float(np.median(ratio))
                if abs(k + 1) <= 1e-3:
                    return "the sign is flipped"
                sign = ", with the opposite sign" if k < 0 else ""
                if abs(k) >= 1.2:
                    return f"{_times(abs(k))} times too large{sign}"
                if abs(k) <= 1 / 1.2:
                    return f"{_times(1 / abs(k))} times too small{sign}"
        offset = a - e
        if a.size > 1 and np.ptp(offset) <= 1e-3 * abs(offset).max():
            shift = float(np.median(offset))
            return f"every value {_fmt(abs(shift), 3)} too {'large' if shift > 0 else 'small'}"
    return ""


def _headline(bad, a, e, worst) -> str:
    """The first line of a value mismatch: how many differ, the worst one's values, the pattern."""
    # a pattern needs two values that share it (a scalar's ratio is the clue of its own)
    pattern = _pattern(a[bad], e[bad]) if not bad.ndim or bad.sum() > 1 else ""
    tail = f" ({pattern})" if pattern else ""
    if not bad.ndim:
        return "got {}, expected {}".format(*_fmt_pair(a, e)) + tail
    where = f"{int(bad.sum())} of {bad.size} values differ"
    if worst is None:
        return where + tail
    return (where + f"; worst at {_index(worst)}: got {{}}, expected {{}}".format(*_fmt_pair(a[worst], e[worst]))
            + tail)


def _report(bad, a, e, rtol, atol, header, nan=False) -> str:
    n_bad, n = int(bad.sum()), bad.size
    lines = []
    numeric = not nan and np.issubdtype(a.dtype, np.number) and a.dtype != bool
    if numeric:  # the clue first; the numpy.testing-style details follow
        worst = None
        if bad.ndim:
            with np.errstate(invalid="ignore", over="ignore"):
                diff = np.abs(a - e)
                worst = np.unravel_index(int(np.argmax(np.where(bad, np.where(np.isnan(diff), np.inf, diff), -1.0))),
                                         bad.shape)
        lines.append(_headline(bad, a, e, worst))
    if rtol is not None:
        lines.append(f"{header} rtol={rtol:g}, atol={atol:g}")
    else:
        lines.append(header)
    if bad.ndim:
        lines.append(f"Mismatched elements: {n_bad} / {n} ({100.0 * n_bad / n:.3g}%)")
    if not bad.ndim:
        if not numeric:
            lines.append("got {}, expected {}".format(*_fmt_pair(a, e)))
        return "\n".join(lines)
    if not nan and np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            diff = np.abs(a - e)
            diff = np.where(np.isnan(diff), np.inf, diff)
            rel = np.where(e != 0, diff / np.abs(e), np.inf)
            rel = np.where(np.isnan(rel), np.inf, rel)  # a finite value where inf was expected
        masked = np.where(bad, diff, -1.0)
        worst = np.unravel_index(int(np.argmax(masked)), bad.shape) if bad.ndim else ()
        worst_rel = np.unravel_index(int(np.argmax(np.where(bad, rel, -1.0))), bad.shape) if bad.ndim else ()
        lines.append(f"Max absolute difference: {_fmt(diff[worst])} at index {_index(worst)}"
                     " (got {}, expected {})".format(*_fmt_pair(a[worst], e[worst])))
        lines.append(f"Max relative difference: {_fmt(rel[worst_rel])} at index {_index(worst_rel)}")
    shown = np.argwhere(bad)[:SHOWN_ENTRIES]
    if len(shown):
        lines.append("First mismatches (index: got vs expected):")
        for idx in shown:
            idx = tuple(idx)
            lines.append("  {}: {} vs {}".format(_index(idx), *_fmt_pair(a[idx], e[idx])))
    return "\n".join(lines)


def _shape_message(actual_shape, expected_shape) -> str:
    msg = f"shape mismatch: expected {tuple(expected_shape)}, got {tuple(actual_shape)}"
    if len(actual_shape) == 2 and tuple(actual_shape) == tuple(expected_shape)[::-1]:
        msg += " (the transpose of the expected shape)"
    elif int(np.prod(actual_shape)) == int(np.prod(expected_shape)):
        msg += " (same number of elements: a reshape or flatten differs)"
    return msg


KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}
NUMBER_KINDS = ("int", "float", "complex")  # each holds the values of those before it


def _dtype_kind(name: str) -> str:
    return "float" if name == "bfloat16" else KINDS.get(np.dtype(name).kind, name)


def _dtype_ok(actual_dtype: str, expected_dtype: str, check) -> bool:
    """``check``: True (the same dtype), "kind" (int, float, complex or bool) or False (any number).

    Bools and numbers never stand for each other, whatever ``check`` says.
    """
    a, e = _dtype_kind(actual_dtype), _dtype_kind(expected_dtype)
    if a not in KINDS.values() or (a == "bool") != (e == "bool"):
        return False
    if check is False:
        return True
    if check == "kind":
        return a == e
    return actual_dtype == expected_dtype


def _list_kind_ok(actual_kind: str, expected_dtype: str, check) -> bool:
    """A list has no dtype of its own: its numbers pass where their kind fits (ints for floats)."""
    e = _dtype_kind(expected_dtype)
    if (actual_kind == "bool") != (e == "bool"):
        return False
    if check is False or e == "bool":
        return True
    return NUMBER_KINDS.index(actual_kind) <= NUMBER_KINDS.index(e)


def _list_leaves(items) -> tuple[str | None, str | None]:
    """(kind of the numbers in a nested list, None) or (None, what stands where no number may).

    Python numbers, numpy scalars and numeric arrays are numbers; a bool among numbers is
    reported as such (numpy would silently make it 1).
    """
    kinds, stack = set(), [items]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
            continue
        if isinstance(x, np.ndarray) and x.dtype.kind in "biufc":
            kinds.add(KINDS[x.dtype.kind])
        elif isinstance(x, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(x, (int, float, complex, np.number)):
            kinds.add(_dtype_kind(np.asarray(x).dtype.name))
        else:
            return None, f"a {type(items).__name__} holding {_kind(x)}"
    if "bool" in kinds and len(kinds) > 1:
        return None, f"a {type(items).__name__} holding bools among numbers"
    numbers = [k for k in NUMBER_KINDS if k in kinds]
    return ("bool" if kinds == {"bool"} else numbers[-1] if numbers else "float"), None


def _compare_tensor(actual, expected, path, opts) -> Error | None:
    if not _is_tensor(actual):
        return Error(path, f"expected a torch.Tensor, got {_kind(actual)}")
    if tuple(actual.shape) != tuple(expected.shape):
        return Error(path, _shape_message(actual.shape, expected.shape))
    a_dt, e_dt = str(actual.dtype).removeprefix("torch."), str(expected.dtype).removeprefix("torch.")
    if not _dtype_ok(a_dt, e_dt, opts.check_dtype):
        return Error(path, f"dtype mismatch: expected {e_dt}, got {a_dt}")
    msg = _values(actual.detach().cpu().float().numpy() if a_dt == "bfloat16" else actual.detach().cpu().numpy(),
                  expected.detach().cpu().float().numpy() if e_dt == "bfloat16" else expected.detach().cpu().numpy(),
                  opts, e_dt)
    return Error(path, msg) if msg else None


LIST_OF = {"bool": "bools", "int": "ints", "float": "floats", "complex": "complex numbers"}


def _compare_array(actual, expected, path, opts) -> Error | None:
    """An ndarray or a numpy scalar is judged by its dtype; a list, tuple or Python number
    (array-likes) by the kind of its numbers."""
    want, e_dtype = _expected_array(expected), expected.dtype.name
    if isinstance(actual, (np.ndarray, np.generic)):
        arr = np.asarray(actual)
        if isinstance(actual, np.bool_) and e_dtype != "bool":
            return Error(path, f"{want}, got {_kind(actual)}")
        if arr.shape != expected.shape:
            return Error(path, _shape_message(arr.shape, expected.shape))
        if not _dtype_ok(arr.dtype.name, e_dtype, opts.check_dtype):
            return Error(path, f"dtype mismatch: expected {expected.dtype}, got {arr.dtype}")
    elif isinstance(actual, (list, tuple, int, float, complex)):
        kind, culprit = _list_leaves(actual)
        if culprit is None and kind == "bool" and e_dtype != "bool":
            culprit = f"{_kind(actual)} of bools" if isinstance(actual, (list, tuple)) else _kind(actual)
        if culprit is not None:
            return Error(path, f"{want}, got {culprit}")
        try:
            arr = np.asarray(actual)
        except ValueError:
            return Error(path, f"{want}, got a ragged {type(actual).__name__} (its items differ in length)")
        if arr.shape != expected.shape:
            return Error(path, _shape_message(arr.shape, expected.shape))
        if not _list_kind_ok(kind, e_dtype, opts.check_dtype):
            return Error(path, f"dtype mismatch: expected {expected.dtype}, got {_kind(actual)} of {LIST_OF[kind]}")
    else:
        return Error(path, f"{want}, got {_kind(actual)}")
    msg = _values(arr, expected, opts, e_dtype)
    return Error(path, msg) if msg else None


def _compare_number(actual, expected, path, opts) -> Error | None:
    if isinstance(actual, np.ndarray) and actual.ndim == 0:
        actual = actual[()]
    if _is_bool(expected):  # a bool is answered by a bool, compared exactly
        if not _is_bool(actual):
            return Error(path, f"expected a bool, got {_kind(actual)}")
        msg = _values(np.asarray(actual), np.asarray(expected), opts, "bool")
        return Error(path, msg) if msg else None
    if _is_bool(actual) or not isinstance(actual, (int, float, complex, np.number)):
        return Error(path, f"expected a number ({type(expected).__name__}), got {_kind(actual)}")
    dtype = "float64" if isinstance(expected, float) else np.asarray(expected).dtype.name
    msg = _values(np.asarray(actual), np.asarray(expected), opts, dtype)
    return Error(path, msg) if msg else None


def _compare(actual, expected, path, opts) -> Error | None:
    if _is_tensor(expected):
        return _compare_tensor(actual, expected, path, opts)
    if isinstance(expected, np.ndarray):
        return _compare_array(actual, expected, path, opts)
    if isinstance(expected, (bool, int, float, complex, np.number, np.bool_)):
        return _compare_number(actual, expected, path, opts)
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)):
            return Error(path, f"expected a {type(expected).__name__} of {len(expected)} items, got {_kind(actual)}")
        if len(actual) != len(expected):
            return Error(path, f"expected {len(expected)} items, got {len(actual)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            err = _compare(a, e, f"{path}[{i}]", opts)
            if err:
                return err
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return Error(path, f"expected a dict, got {_kind(actual)}")
        if set(actual) != set(expected):
            return Error(path, f"expected keys {sorted(expected)}, got {sorted(actual)}")
        for k in expected:
            err = _compare(actual[k], expected[k], f"{path}[{k!r}]", opts)
            if err:
                return err
        return None
    if expected is None or isinstance(expected, str):
        return None if actual == expected and type(actual) is type(expected) else Error(path, f"expected {expected!r}, got {_kind(actual)}")
    raise TypeError(f"assert_close cannot compare expected values of type {type(expected).__name__}")


def assert_close(actual, expected, *, rtol: float | None = None, atol: float | None = None,
                 equal_nan: bool = False, check_dtype: bool | str = True, name: str = "result") -> None:
    """Raise :class:`Mismatch` unless ``actual`` matches ``expected`` within tolerances.

    ``expected`` sets the kind: tensors need tensors, arrays accept array-likes, numbers
    accept numbers and 0-d arrays, sequences and dicts are compared item by item.
    ``check_dtype``: True (exact), "kind" (float/int/bool/complex) or False.
    Tolerances default by dtype as in torch.testing; ``|actual - expected| <= atol + rtol * |expected|``.
    """
    if rtol is not None and atol is None:
        atol = 0.0 if rtol == 0 else None
    err = _compare(actual, expected, name, Options(rtol, atol, equal_nan, check_dtype))
    if err:
        raise Mismatch(f"{err.path}: {err.message}")


def _dtype_name(x) -> str | None:
    if _is_tensor(x):
        return str(x.dtype).removeprefix("torch.")
    if isinstance(x, (np.ndarray, np.generic)):
        return x.dtype.name
    if isinstance(x, float):
        return "float64"
    return None


def _dtypes(actual, expected, path) -> Error | None:
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        for i, (a, e) in enumerate(zip(actual, expected)):
            err = _dtypes(a, e, f"{path}[{i}]")
            if err:
                return err
        return None
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in expected.keys() & actual.keys():
            err = _dtypes(actual[k], expected[k], f"{path}[{k!r}]")
            if err:
                return err
        return None
    want, got = _dtype_name(expected), _dtype_name(actual)
    if want is None or want == got:
        return None
    return Error(path, f"dtype mismatch: expected {want}, got {got or _kind(actual)}")


def assert_dtypes(actual, expected, *, name: str = "result") -> None:
    """Raise :class:`Mismatch` unless every array, tensor and float of ``actual`` has the dtype
    of its counterpart in ``expected`` (a Python float is float64).

    The contract's dtype test of a function, beside value tests that accept any precision that
    holds the values (``check_dtype="kind"``); shapes and values are not compared here.
    """
    err = _dtypes(actual, expected, name)
    if err:
        raise Mismatch(f"{err.path}: {err.message}")


def unpack(value, n: int, *, name: str = "result") -> tuple:
    """A student's answer as a tuple of ``n`` items, or :class:`Mismatch` saying what came
    instead. A grader unpacks answers only through this: ``a, b = answer`` on a wrong answer
    would be the grader's error, and give that student no score."""
    if not isinstance(value, (tuple, list)):
        raise Mismatch(f"{name}: expected a tuple of {n} items, got {_kind(value)}")
    if len(value) != n:
        raise Mismatch(f"{name}: expected {n} items, got {len(value)}")
    return tuple(value)


def float_array(value, *, name: str = "result", shape: tuple | None = None) -> np.ndarray:
    """A student's answer as a float64 array (of ``shape`` when given), or :class:`Mismatch`."""
    if _is_bool(value) or isinstance(value, np.ndarray) and value.dtype == bool:
        raise Mismatch(f"{name}: expected numbers, got {_kind(value)} of bools")
    try:
        arr = np.asarray(value.detach().cpu().numpy() if _is_tensor(value) else value, dtype=float)
    except (TypeError, ValueError):
        raise Mismatch(f"{name}: expected numbers, got {_kind(value)}") from None
    if shape is not None and arr.shape != tuple(shape):
        raise Mismatch(f"{name}: {_shape_message(arr.shape, shape)}")
    return arr

