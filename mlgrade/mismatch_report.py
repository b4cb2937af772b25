"""The words of a value mismatch, in the format of numpy.testing.assert_allclose: a first line
that says how many values differ, the worst one's values with the digits that tell them apart
and what the mismatched values have in common ("2.0 times too large", "the sign is flipped");
then the tolerances, the count and share of mismatched elements, the largest absolute and
relative difference with its index, and a few offending indices with both values.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fmt", "fmt_pair", "index_text", "value_report"]

SHOWN_ENTRIES = 4


def fmt(v, digits: int = 6) -> str:
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}g}"
    return repr(v.item() if hasattr(v, "item") else v)


def fmt_pair(a, e) -> tuple[str, str]:
    """Both values with as many significant digits (6 to 17) as it takes to tell them apart."""
    for digits in range(6, 18):
        got, expected = fmt(a, digits), fmt(e, digits)
        if got != expected:
            break
    return got, expected


def index_text(idx) -> str:
    return "(" + ", ".join(str(int(i)) for i in idx) + ")" if len(idx) != 1 else f"[{int(idx[0])}]"


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
            return f"every value {fmt(abs(shift), 3)} too {'large' if shift > 0 else 'small'}"
    return ""


def _headline(bad, a, e, worst) -> str:
    """The first line of a value mismatch: how many differ, the worst one's values, the pattern."""
    # a pattern needs two values that share it (a scalar's ratio is the clue of its own)
    pattern = _pattern(a[bad], e[bad]) if not bad.ndim or bad.sum() > 1 else ""
    tail = f" ({pattern})" if pattern else ""
    if not bad.ndim:
        return "got {}, expected {}".format(*fmt_pair(a, e)) + tail
    where = f"{int(bad.sum())} of {bad.size} values differ"
    if worst is None:
        return where + tail
    return (where + f"; worst at {index_text(worst)}: got {{}}, expected {{}}".format(*fmt_pair(a[worst], e[worst]))
            + tail)


def value_report(bad, a, e, rtol, atol, header, nan=False) -> str:
    """The message of a value mismatch (``bad``: where ``a`` and ``e`` differ): the headline first."""
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
            lines.append("got {}, expected {}".format(*fmt_pair(a, e)))
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
        lines.append(f"Max absolute difference: {fmt(diff[worst])} at index {index_text(worst)}"
                     " (got {}, expected {})".format(*fmt_pair(a[worst], e[worst])))
        lines.append(f"Max relative difference: {fmt(rel[worst_rel])} at index {index_text(worst_rel)}")
    shown = np.argwhere(bad)[:SHOWN_ENTRIES]
    if len(shown):
        lines.append("First mismatches (index: got vs expected):")
        for idx in shown:
            idx = tuple(idx)
            lines.append("  {}: {} vs {}".format(index_text(idx), *fmt_pair(a[idx], e[idx])))
    return "\n".join(lines)
