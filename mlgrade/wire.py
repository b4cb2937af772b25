"""The data-only wire format between the grading process and the sandboxed worker.

Everything a worker sends is decoded here, and this is the only decoder the grading
process uses for it: JSON for structure, raw little-endian buffers for arrays. There is no
pickle, no object reconstruction and no class lookup, so a worker can at worst send wrong
numbers, never code or an object with behaviour (a lying ``__eq__``, an ndarray subclass).

Values that travel: None, bool, int, float, str, list, tuple, dict with str keys, numpy
arrays and scalars of numeric dtypes, torch tensors (CPU, numeric dtypes; ``requires_grad``
kept), and :class:`Ref`, a handle on an object that stays in the worker.
"""
from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Either", "Named", "Ref", "UnsupportedValue", "WireError", "encode", "decode", "describe"]

# numeric dtypes only: object, string, void and datetime arrays are refused
ARRAY_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 "
    "float16 float32 float64 complex64 complex128".split()
)
# Limits of a frame, the same for both directions; the encoder refuses what the decoder would.
MAX_DEPTH = 64  # nesting of values
MAX_NODES = 200_000  # values in a frame
MAX_STR = 6 << 20  # characters of one string: a whole .py source travels as one
MAX_KEY = 256  # characters of one dict key
MAX_INT_DIGITS = 4000
MAX_HEADER = 16 << 20  # bytes of a frame's JSON part (arrays travel after it, raw)
# What the JSON part may hold before json.loads builds anything (see _check_header): a value
# nests at most 3 JSON levels deep per level of its own ({"d": [[key, value]]}), and a JSON
# container or separator costs at most ~100 bytes of Python objects once parsed.
MAX_JSON_DEPTH = 3 * (MAX_DEPTH + 1) + 3
MAX_JSON_ITEMS = 500_000  # containers + separators: a bound on the number of JSON values

MSG_UNSUPPORTED = (
    "{path} is {what}; only numbers, strings, lists, tuples, dicts, numpy arrays and "
    "torch tensors can be graded"
)


class WireError(ValueError):
    """A frame that does not decode: corrupted, truncated or forged."""


class UnsupportedValue(TypeError):
    """A value that cannot travel (raised while encoding, with the path to it)."""

    def __init__(self, path: str, what: str):
        self.path, self.what = path, what
        super().__init__(MSG_UNSUPPORTED.format(path=path, what=what))


@dataclass(frozen=True)
class Ref:
    """A handle on an object kept in the worker; ``ref[i]`` designates an item of it."""

    id: int
    path: tuple = ()
    mutated: tuple = field(default=(), compare=False)  # arguments the call modified in place

    def __getitem__(self, key) -> "Ref":
        if not isinstance(key, (int, str)):
            raise TypeError("Ref items are int or str keys")
        return Ref(self.id, self.path + (key,))


@dataclass(frozen=True)
class Named:
    """Encodes as ``value``; an error inside it names ``path`` ("the returned value"), not the reply's keys."""

    value: object
    path: str


@dataclass(frozen=True)
class Either:
    """Encodes as ``first``, or as ``fallback`` where ``first`` cannot travel: one encode, no trial run."""

    first: object
    fallback: object


def _torch():
    import sys

    return sys.modules.get("torch")


def _type_name(obj) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _Encoder:
    def __init__(self):
        self.buffers: list[bytes] = []
        self.offset = 0
        self.nodes = 0

    def blob(self, data: bytes) -> list[int]:
        start = self.offset
        self.buffers.append(data)
        self.offset += len(data)
        return [start, len(data)]

    def array(self, arr: np.ndarray, path: str) -> list:
        name = arr.dtype.name
        if name not in ARRAY_DTYPES:
            raise UnsupportedValue(path, f"an array of dtype {arr.dtype}")
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
        return [name, list(arr.shape), *self.blob(data.tobytes())]

    def node(self, obj, path: str, depth: int):
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise UnsupportedValue(path, "nested too deeply or too large")
        cls = type(obj)
        if obj is None or cls is bool:
            return obj
        if cls is int:
            return {"i": str(obj)}
        if cls is float:
            return {"f": repr(obj)}
        if cls is str:
            if len(obj) > MAX_STR:
                raise UnsupportedValue(path, f"a string of {len(obj)} characters (at most {MAX_STR})")
            return obj
        if cls in (list, tuple):
            items = [self.node(x, f"{path}[{i}]", depth + 1) for i, x in enumerate(obj)]
            return {"l" if cls is list else "t": items}
        if cls is dict:
            out = []
            for k, v in obj.items():
                if type(k) is not str:
                    raise UnsupportedValue(path, f"a dict with a key of type {_type_name(k)}")
                if len(k) > MAX_KEY:
                    raise UnsupportedValue(path, f"a dict with a key of {len(k)} characters (at most {MAX_KEY})")
                out.append([k, self.node(v, f"{path}[{k!r}]", depth + 1)])
            return {"d": out}
        if cls is np.ndarray:
            return {"a": self.array(obj, path)}
        if isinstance(obj, np.generic) and cls.__module__ == "numpy":
            return {"s": self.array(np.asarray(obj), path)}
        if cls is Ref:
            return {"r": [obj.id, [self.node(k, path, depth + 1) for k in obj.path]]}
        if cls is Named:
            return self.node(obj.value, obj.path, depth)
        if cls is Either:
            mark = (len(self.buffers), self.offset, self.nodes)
            try:
                return self.node(obj.first, path, depth)
            except UnsupportedValue:
                del self.buffers[mark[0]:]
                self.offset, self.nodes = mark[1], mark[2]
                return self.node(obj.fallback, path, depth)
        torch = _torch()
        if torch is not None and isinstance(obj, torch.Tensor):
            # nn.Parameter is torch's own; any other subclass may carry behaviour
            if cls not in (torch.Tensor, torch.nn.Parameter):
                raise UnsupportedValue(path, f"a subclass of torch.Tensor ({_type_name(obj)})")
            if obj.is_sparse or obj.is_quantized or obj.is_complex() and obj.is_conj():
                obj = obj.resolve_conj().to_dense() if obj.is_sparse else obj.resolve_conj()
            t = obj.detach().cpu()
            name = str(t.dtype).removeprefix("torch.")
            if name == "bfloat16":
                t = t.float()
            arr = t.contiguous().numpy()
            spec = self.array(arr, path)
            spec[0] = name
            return {"T": spec + [bool(obj.requires_grad)]}
        if isinstance(obj, np.ndarray):
            raise UnsupportedValue(path, f"a subclass of numpy.ndarray ({_type_name(obj)})")
        raise UnsupportedValue(path, f"an object of type {_type_name(obj)}")


def encode(obj, path: str = "value") -> bytes:
    """Encode ``obj`` into one frame payload; raises UnsupportedValue naming the culprit."""
    enc = _Encoder()
    tree = json.dumps(enc.node(obj, path, 0), separators=(",", ":"), allow_nan=False).encode()
    try:
        _check_header(tree)  # what the decoder would refuse is refused here, with the path
    except WireError:
        raise UnsupportedValue(path, "nested too deeply or too large") from None
    return b"".join([struct.pack("<Q", len(tree)), tree, *enc.buffers])


# a JSON string (possessive: linear time whatever it holds), a structural byte, or a lone
# quote that begins no string (an unterminated one)
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},:]|"', re.S)
_INT = re.compile(r"-?[0-9]+")
_NESTING = np.zeros(256, dtype=np.int8)
_NESTING[list(b"[{")], _NESTING[list(b"]}")] = 1, -1
_DEPTH_CHUNK = 1 << 20


def _structure(text: bytes) -> tuple[int, int]:
    """(containers, containers + separators) of JSON text: there are at most 1 + the second values."""
    opened = text.count(b"[") + text.count(b"{")
    return opened, opened + text.count(b",") + text.count(b":")


def _max_depth(text: bytes) -> int:
    """The deepest nesting of brackets in ``text``, strings included, in chunks of bounded memory."""
    steps = np.frombuffer(text, dtype=np.uint8)
    deepest = depth = 0
    for i in range(0, len(steps), _DEPTH_CHUNK):
        levels = np.cumsum(_NESTING[steps[i:i + _DEPTH_CHUNK]], dtype=np.int64) + depth
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _scan(header: bytes) -> None:
    """The exact count, token by token, strings skipped; stops at the first excess."""
    depth = items = 0
    for match in _JSON_TOKEN.finditer(header):
        first = header[match.start()]
        if first == 0x22:  # "
            if match.end() - match.start() == 1:
                raise WireError("malformed JSON: unterminated string")
        elif first in b"]}":
            depth -= 1
        else:
            items += 1
            depth += first in b"[{"
            if items > MAX_JSON_ITEMS or depth > MAX_JSON_DEPTH:
                raise WireError("frame nested too deeply or too large")


def _check_header(header: bytes) -> None:
    """Bound a frame's JSON text before json.loads builds anything from it (WireError if over).

    What json.loads builds is bounded by the text's size and its number of values, and a
    value (a list, a dict, a number or a string, and its slot) costs at most ~100 bytes
    beyond its characters; bounded nesting keeps json.loads and the decoder within the
    recursion limit. Containers, separators and depth counted over the whole text, strings'
    contents included (C speed), are upper bounds, enough for almost every frame; a frame
    over them is counted exactly, token by token.
    """
    if len(header) > MAX_HEADER:
        raise WireError("frame header too large")
    if not header.isascii():  # encode() writes ASCII (json.dumps escapes the rest)
        raise WireError("malformed JSON: not ASCII")
    opened, items = _structure(header)
    if items > MAX_JSON_ITEMS or opened > MAX_JSON_DEPTH and _max_depth(header) > MAX_JSON_DEPTH:
        _scan(header)


class _Decoder:
    def __init__(self, blob: memoryview, make_ref):
        self.blob = blob
        self.nodes = 0
        self.array_bytes = 0  # arrays may not share bytes: together they fit in the frame
        self.make_ref = make_ref

    def array(self, spec, tensor_dtype=False) -> np.ndarray:
        if not (isinstance(spec, list) and len(spec) >= 4):
            raise WireError("malformed array")
        name, shape, start, nbytes = spec[:4]
        np_name = "float32" if (tensor_dtype and name == "bfloat16") else name
        if type(name) is not str or np_name not in ARRAY_DTYPES:
            raise WireError(f"refused dtype {str(name)[:40]!r}")
        if not (isinstance(shape, list) and len(shape) <= 32 and all(type(d) is int and d >= 0 for d in shape)):
            raise WireError("malformed shape")
        if not (type(start) is int and type(nbytes) is int and 0 <= start and start + nbytes <= len(self.blob)):
            raise WireError("array outside the frame")
        dtype = np.dtype(np_name).newbyteorder("<")
        if math.prod(shape) * dtype.itemsize != nbytes:  # exact: no int64 overflow
            raise WireError("array size does not match its shape")
        self.array_bytes += nbytes
        if self.array_bytes > len(self.blob):
            raise WireError("arrays overlap in the frame")
        flat = np.frombuffer(self.blob[start:start + nbytes], dtype=dtype)
        return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)

    def node(self, node, depth: int):
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise WireError("frame nested too deeply or too large")
        if node is None or type(node) is bool:
            return node
        if type(node) is str:
            if len(node) > MAX_STR:
                raise WireError("string too long")
            return node
        if type(node) is not dict or len(node) != 1:
            raise WireError(f"unexpected node {type(node).__name__}")
        (tag, val), = node.items()
        if tag == "i":
            if type(val) is not str or len(val) > MAX_INT_DIGITS or not _INT.fullmatch(val):
                raise WireError("malformed int")
            return int(val)
        if tag == "f":
            if type(val) is not str or len(val) > 40:
                raise WireError("malformed float")
            try:
                return float(val)
            except ValueError:
                raise WireError("malformed float") from None
        if tag in ("l", "t") and type(val) is list:
            items = [self.node(x, depth + 1) for x in val]
            return items if tag == "l" else tuple(items)
        if tag == "d" and type(val) is list:
            out = {}
            for pair in val:
                if not (type(pair) is list and len(pair) == 2 and type(pair[0]) is str):
                    raise WireError("malformed dict")
                if len(pair[0]) > MAX_KEY:
                    raise WireError("dict key too long")
                out[pair[0]] = self.node(pair[1], depth + 1)
            return out
        if tag == "a":
            return self.array(val)
        if tag == "s":
            arr = self.array(val)
            if arr.ndim:
                raise WireError("malformed scalar")
            return arr[()]
        if tag == "T":
            import torch

            arr = self.array(val, tensor_dtype=True)
            name = val[0]
            t = torch.from_numpy(arr)
            if name == "bfloat16":
                t = t.to(torch.bfloat16)
            if len(val) > 4 and val[4] is True and t.is_floating_point():
                t.requires_grad_(True)
            return t
        if tag == "r" and type(val) is list and len(val) == 2 and type(val[0]) is int and type(val[1]) is list:
            keys = tuple(self.node(k, depth + 1) for k in val[1])
            if not all(type(k) in (int, str) for k in keys):
                raise WireError("malformed ref")
            return self.make_ref(val[0], keys)
        raise WireError(f"unknown tag {tag[:20]!r}")


def decode(payload: bytes, make_ref=Ref) -> object:
    """Decode a payload made by :func:`encode`; raises WireError on anything else."""
    view = memoryview(payload)
    if len(view) < 8:
        raise WireError("truncated frame")
    (n,) = struct.unpack("<Q", view[:8])
    if n > len(view) - 8:
        raise WireError("truncated frame")
    if n > MAX_HEADER:
        raise WireError("frame header too large")
    header = bytes(view[8:8 + n])
    _check_header(header)
    try:
        tree = json.loads(header.decode("ascii"))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"malformed JSON: {str(exc)[:200]}") from None
    return _Decoder(view[8 + n:], make_ref).node(tree, 0)


def describe(value, limit: int = 6) -> str:
    """A short, bounded description of a value: type, dtype and shape, never its contents."""
    torch = _torch()
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array {tuple(value.shape)}"
    if torch is not None and isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} tensor {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v, limit) for v in value[:limit])
        more = ", ..." if len(value) > limit else ""
        return ("[%s%s]" if isinstance(value, list) else "(%s%s)") % (inner, more)
    if isinstance(value, dict):
        return "dict with keys " + ", ".join(map(repr, list(value)[:limit]))
    if isinstance(value, Ref):
        return "<result of an earlier call>"
    if isinstance(value, (bool, int, float, np.generic)) or value is None:
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) < 40 else value[:37] + "...")
    return type(value).__name__
