"""mlgrade.wire: the data-only format between the grading process and the worker."""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mlgrade import wire
from mlgrade.wire import Ref, UnsupportedValue, WireError, decode, encode

TAIL = "; only numbers, strings, lists, tuples, dicts, numpy arrays and torch tensors can be graded"


def roundtrip(value):
    return decode(encode(value))


def frame(tree, blob: bytes = b"") -> bytes:
    """A hand-made payload: JSON tree length, tree, buffers."""
    return raw(json.dumps(tree).encode(), blob)


def raw(header: bytes, blob: bytes = b"") -> bytes:
    """A payload around JSON text written by hand (possibly not JSON at all)."""
    return struct.pack("<Q", len(header)) + header + blob


# -- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 10**300, 1.5, -0.0, float("inf"), float("-inf"), 1e-310, "", "héllo ∑",
    [], (), {}, [1, [2, (3, "x")]], {"a": {"b": [None, 2.5]}}, (1,), [(), []],
])
def test_plain_values_roundtrip_with_their_types(value):
    out = roundtrip(value)
    assert out == value and type(out) is type(value)
    if isinstance(value, float) and value == 0:
        assert str(out) == str(value)  # the sign of zero survives


def test_nan_roundtrips():
    assert np.isnan(roundtrip(float("nan")))


@pytest.mark.parametrize("dtype", sorted(wire.ARRAY_DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 1, 1, 2)])
def test_arrays_roundtrip_every_dtype_and_shape(dtype, shape):
    arr = (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)
    out = roundtrip(arr)
    assert type(out) is np.ndarray and out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable and out.flags.c_contiguous


def test_arrays_keep_values_when_not_contiguous_or_big_endian():
    arr = np.arange(24.0).reshape(4, 6)[::2, 1::2].T
    np.testing.assert_array_equal(roundtrip(arr), arr)
    big = np.arange(5, dtype=">i4")
    out = roundtrip(big)
    np.testing.assert_array_equal(out, big)
    assert out.dtype == np.dtype("int32")


def test_special_float_values_in_arrays():
    arr = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324])
    out = roundtrip(arr)
    assert out.tobytes() == arr.tobytes()


@pytest.mark.parametrize("scalar", [np.float64(1.25), np.float32(-2.5), np.int64(-3), np.uint8(200), np.bool_(True),
                                    np.complex128(1 - 2j), np.float16(0.5)])
def test_numpy_scalars_stay_numpy_scalars(scalar):
    out = roundtrip(scalar)
    assert type(out) is type(scalar) and out == scalar


def test_zero_d_array_stays_an_array():
    out = roundtrip(np.array(3.5))
    assert type(out) is np.ndarray and out.shape == () and out[()] == 3.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32,
                                   torch.uint8, torch.bool, torch.complex64])
def test_tensors_roundtrip(dtype):
    t = torch.arange(6).reshape(2, 3).to(dtype)
    out = roundtrip(t)
    assert type(out) is torch.Tensor and out.dtype == dtype and out.shape == t.shape
    assert torch.equal(out, t) and not out.requires_grad


def test_bfloat16_tensor_roundtrips_exactly():
    t = torch.tensor([1.0, -2.5, 3.140625, 1e30], dtype=torch.bfloat16)
    out = roundtrip(t)
    assert out.dtype == torch.bfloat16 and torch.equal(out, t)


def test_requires_grad_is_kept_for_float_tensors():
    t = torch.ones(3, requires_grad=True) * 2  # a non-leaf tensor with a graph
    out = roundtrip(t)
    assert out.requires_grad and out.is_leaf and out.grad_fn is None
    assert torch.equal(out.detach(), t.detach())
    assert not roundtrip(torch.ones(2)).requires_grad


def test_zero_d_tensor_and_parameter_and_views():
    assert roundtrip(torch.tensor(2.0)).shape == ()
    p = torch.nn.Parameter(torch.ones(2, 2))
    out = roundtrip(p)
    assert type(out) is torch.Tensor and out.requires_grad
    view = torch.arange(12.0).reshape(3, 4).t()[1:]
    assert torch.equal(roundtrip(view), view)


def test_sparse_and_conjugate_tensors_travel_as_dense_values():
    sparse = torch.eye(3).to_sparse()
    assert torch.equal(roundtrip(sparse), torch.eye(3))
    z = torch.tensor([1 + 2j]).conj()
    assert torch.equal(roundtrip(z), torch.tensor([1 - 2j]))


def test_ref_travels_as_a_handle_with_its_path():
    assert roundtrip(Ref(3)) == Ref(3)
    assert roundtrip([Ref(3)[1]["a"]]) == [Ref(3, (1, "a"))]
    assert decode(encode(Ref(5)[0]), make_ref=lambda i, keys: ("resolved", i, keys)) == ("resolved", 5, (0,))


def test_ref_items_are_int_or_str():
    with pytest.raises(TypeError, match=re.escape("Ref items are int or str keys")):
        Ref(1)[1.5]


# -- refusals when encoding ---------------------------------------------------------------

class Custom:
    pass


class SubArray(np.ndarray):
    pass


class SubTensor(torch.Tensor):
    pass


@pytest.mark.parametrize("value,message", [
    (np.array([1, "a"], dtype=object), "value is an array of dtype object"),
    (np.array(["ab"]), "value is an array of dtype <U2"),
    (np.array([b"x"]), "value is an array of dtype |S1"),
    (np.zeros(2, dtype="datetime64[s]"), "value is an array of dtype datetime64[s]"),
    (np.zeros(2, dtype=[("a", "i4")]), "value is an array of dtype [('a', '<i4')]"),
    (Custom(), "value is an object of type test_wire.Custom"),
    (b"bytes", "value is an object of type bytes"),
    ({1, 2}, "value is an object of type set"),
    ({1: 2}, "value is a dict with a key of type int"),
    (np.zeros(3).view(SubArray), "value is a subclass of numpy.ndarray (test_wire.SubArray)"),
    (torch.zeros(2).as_subclass(SubTensor), "value is a subclass of torch.Tensor (test_wire.SubTensor)"),
    (np.ma.array([1, 2]), "value is a subclass of numpy.ndarray (numpy.ma.MaskedArray)"),
    (lambda: 0, "value is an object of type function"),
])
def test_unsupported_values_are_refused_with_what_they_are(value, message):
    with pytest.raises(UnsupportedValue, match=re.escape(message + TAIL)):
        encode(value)


def test_the_culprit_path_is_named():
    value = {"out": [np.zeros(2), (1.0, Custom())]}
    with pytest.raises(UnsupportedValue, match=re.escape("the returned value['out'][1][1] is an object of type test_wire.Custom")) as info:
        encode(value, path="the returned value")
    assert info.value.path == "the returned value['out'][1][1]"


def test_a_pickle_payload_is_just_an_unsupported_object():
    class Payload:
        def __reduce__(self):
            raise AssertionError("never pickled")

    with pytest.raises(UnsupportedValue, match=re.escape("value is an object of type test_wire.")):
        encode(Payload())
    with pytest.raises(UnsupportedValue, match=re.escape("value[0] is an object of type bytes")):
        encode([pickle.dumps(1)])


def test_subclasses_of_builtins_are_refused():
    class MyList(list):
        pass

    class MyFloat(float):
        def __eq__(self, other):
            return True

    with pytest.raises(UnsupportedValue, match=re.escape("value is an object of type test_wire.")):
        encode(MyList([1]))
    with pytest.raises(UnsupportedValue, match=re.escape("value[0] is an object of type test_wire.")):
        encode([MyFloat(1.0)])


def test_deep_or_huge_values_are_refused():
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(UnsupportedValue, match=re.escape("is nested too deeply or too large" + TAIL)):
        encode(deep)
    with pytest.raises(UnsupportedValue, match=re.escape("is nested too deeply or too large")):
        encode([0] * (wire.MAX_NODES + 1))


# -- decoder robustness --------------------------------------------------------------------

GOOD = encode({"x": np.arange(4.0), "t": torch.ones(2)})


FORGED = [
    (b"", "truncated frame"),
    (b"\x01\x00", "truncated frame"),
    (struct.pack("<Q", 100) + b"{}", "truncated frame"),
    (GOOD[:20], "truncated frame"),
    (GOOD[:-8], "array outside the frame"),
    (frame("x")[:8] + b"\xff" * len(json.dumps("x")), "malformed JSON"),
    (frame({"q": 1}), "unknown tag 'q'"),
    (frame({"a": 1, "b": 2}), "unexpected node dict"),
    (frame(3), "unexpected node int"),
    (frame(2.5), "unexpected node float"),
    (frame({"i": 5}), "malformed int"),
    (frame({"i": "9" * 5000}), "malformed int"),
    (frame({"f": "1" * 50}), "malformed float"),
    (frame({"d": [[1, None]]}), "malformed dict"),
    (frame({"d": [["k"]]}), "malformed dict"),
    (frame({"a": ["object", [1], 0, 8]}, b"\0" * 8), "refused dtype 'object'"),
    (frame({"a": ["<U1", [1], 0, 4]}, b"\0" * 4), "refused dtype '<U1'"),
    (frame({"T": ["bfloat16", [1], 0, 2, False]}, b"\0" * 4), "array size does not match its shape"),
    (frame({"a": ["float64", [3], 0, 16]}, b"\0" * 16), "array size does not match its shape"),
    (frame({"a": ["float64", [2], 0, 16]}, b"\0" * 8), "array outside the frame"),
    (frame({"a": ["float64", [2], -8, 16]}, b"\0" * 16), "array outside the frame"),
    (frame({"a": ["float64", [-2], 0, 16]}, b"\0" * 16), "malformed shape"),
    (frame({"a": ["float64", [2.0], 0, 16]}, b"\0" * 16), "malformed shape"),
    (frame({"a": ["float64", [1] * 33, 0, 8]}, b"\0" * 8), "malformed shape"),
    (frame({"a": ["float64", [2**40, 2**40], 0, 16]}, b"\0" * 16), "array size does not match its shape"),
    (frame({"a": ["float64", [2]]}), "malformed array"),
    (frame({"a": "float64"}), "malformed array"),
    (frame({"s": ["float64", [2], 0, 16]}, b"\0" * 16), "malformed scalar"),
    (frame({"r": ["1", []]}), "unknown tag 'r'"),
    (frame({"l": 5}), "unknown tag 'l'"),
    # values that int(), float(), numpy or hashing would turn into another exception
    (frame({"i": "abc"}), "malformed int"),
    (frame({"i": "1_000"}), "malformed int"),
    (frame({"i": " 7"}), "malformed int"),
    (frame({"f": "abc"}), "malformed float"),
    (frame({"a": [["float64"], [1], 0, 8]}, b"\0" * 8), "refused dtype \"['float64']\""),
    (frame({"s": [{"x": 1}, [], 0, 8]}, b"\0" * 8), "refused dtype \"{'x': 1}\""),
    (frame({"a": ["float64", [2**32, 2**32], 0, 0]}), "array size does not match its shape"),  # 2**64 wraps to 0 in int64
    (frame({"a": ["float64", [2**63], 0, 0]}), "array size does not match its shape"),
    (frame({"l": [{"a": ["float64", [1], 0, 8]}] * 3}, b"\0" * 8), "arrays overlap in the frame"),
    (frame({"r": [1, 5]}), "unknown tag 'r'"),
    (frame({"r": [1, "ab"]}), "unknown tag 'r'"),
    (frame({"r": [1, [{"f": "1.5"}]]}), "malformed ref"),
    (frame({"r": [1, [None]]}), "malformed ref"),
    (frame({"d": [["k" * (wire.MAX_KEY + 1), None]]}), "dict key too long"),
    (frame({"x" * 100_000: 1}), "unknown tag 'xxxxxxxxxxxxxxxxxxxx'"),
    # text that is not what encode() writes
    (raw('"é"'.encode()), "malformed JSON: not ASCII"),
    (raw(b"[\0\0\0"), "malformed JSON"),
    (raw(b'"' + b'\\"' * 300_000 + b",[]" * 300_000), "malformed JSON: unterminated string"),
    (raw(b"NaN"), "unexpected node float"),
    (raw(b"1" * 5000), "malformed JSON"),
    (raw(b"[" + b"[]," * (wire.MAX_JSON_ITEMS // 2) + b"[]]"), "frame nested too deeply or too large"),
    (raw(b"[" * (wire.MAX_JSON_DEPTH + 1) + b"]" * (wire.MAX_JSON_DEPTH + 1)), "frame nested too deeply or too large"),
    (raw(b" " * (wire.MAX_HEADER + 1)), "frame header too large"),
]


@pytest.mark.parametrize("payload,message", FORGED, ids=[f"{i}-{m}" for i, (_, m) in enumerate(FORGED)])
def test_forged_frames_raise_wire_error(payload, message):
    with pytest.raises(WireError, match=re.escape(message)) as info:
        decode(payload)
    assert len(str(info.value)) <= 250  # a reason quoted in messages: never the frame's contents


def test_brackets_and_separators_inside_strings_are_not_structure():
    # over the quick upper bounds (strings' contents counted), so counted exactly: a source full
    # of brackets and commas travels
    source = "x = [[{a: b}, (c, d)]]\n" * 60_000
    assert roundtrip({"chunks": [["hw6.py", source]]}) == {"chunks": [["hw6.py", source]]}
    deep_text = "[" * 1000 + "]" * 1000
    assert roundtrip([deep_text]) == [deep_text]


def test_deeply_nested_frames_raise_wire_error():
    tree = "x"
    for _ in range(wire.MAX_DEPTH + 2):
        tree = {"l": [tree]}
    with pytest.raises(WireError, match=re.escape("frame nested too deeply or too large")):
        decode(frame(tree))
    very_deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(WireError, match=re.escape("frame nested too deeply or too large")):
        decode(raw(very_deep))


def test_too_many_nodes_and_long_strings_raise_wire_error():
    with pytest.raises(WireError, match=re.escape("frame nested too deeply or too large")):
        decode(frame({"l": [None] * (wire.MAX_NODES + 1)}))
    with pytest.raises(WireError, match=re.escape("string too long")):
        decode(frame("x" * (wire.MAX_STR + 1)))


def test_every_truncation_of_a_good_frame_is_refused():
    for n in range(len(GOOD)):
        with pytest.raises(WireError):
            decode(GOOD[:n])


def test_random_garbage_never_escapes_as_another_exception():
    rng = np.random.default_rng(0)
    for _ in range(300):
        junk = bytearray(GOOD)
        for i in rng.integers(0, len(junk), size=3):
            junk[i] = int(rng.integers(0, 256))
        try:
            decode(bytes(junk))
        except WireError:
            pass


def test_describe_is_bounded_and_never_shows_contents():
    assert wire.describe(np.zeros((2, 3))) == "float64 array (2, 3)"
    assert wire.describe(torch.zeros(4, dtype=torch.bfloat16)) == "bfloat16 tensor (4,)"
    assert wire.describe(list(range(10))) == "[0, 1, 2, 3, 4, 5, ...]"
    assert wire.describe((1.5,)) == "(1.5)"
    assert wire.describe({"a": 1}) == "dict with keys 'a'"
    assert wire.describe(Ref(1)) == "<result of an earlier call>"
    assert wire.describe("x" * 100) == repr("x" * 37 + "...")
    assert wire.describe(Custom()) == "Custom"


def test_the_encoder_refuses_what_the_decoder_would():
    assert roundtrip([1.5] * 150_000) == [1.5] * 150_000
    # fewer values than MAX_NODES, more JSON than a frame may hold
    with pytest.raises(UnsupportedValue, match="^" + re.escape("value is nested too deeply or too large" + TAIL) + "$"):
        encode([1.5] * 170_000)
    with pytest.raises(UnsupportedValue, match="^" + re.escape(
            "value[0] is a string of 6291457 characters (at most 6291456)" + TAIL) + "$"):
        encode(["x" * (wire.MAX_STR + 1)])
    with pytest.raises(UnsupportedValue, match="^" + re.escape(
            "value is a dict with a key of 257 characters (at most 256)" + TAIL) + "$"):
        encode({"k" * (wire.MAX_KEY + 1): 1})
    assert roundtrip({"k" * wire.MAX_KEY: "x" * wire.MAX_STR}) == {"k" * wire.MAX_KEY: "x" * wire.MAX_STR}


PEAK_MEMORY_SCRIPT = textwrap.dedent("""
    import gc, json, struct
    from mlgrade import wire

    def filled(unit, size, head=b"[", tail=b"]"):
        header = head + (unit * (size // len(unit)))[:-1] + tail
        return struct.pack("<Q", len(header)) + header

    def status(field):  # kB, from Linux's /proc/self/status
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

    SIZE = wire.MAX_HEADER - 64
    frames = {
        "24 MB of nested lists": lambda: filled(b"[[[[[[[[[[]]]]]]]]]],", 24 << 20),
        "16 MB of nested lists": lambda: filled(b"[[[[[[[[[[]]]]]]]]]],", SIZE),
        "16 MB of empty lists": lambda: filled(b"[],", SIZE),
        "16 MB of one-key objects": lambda: filled(b'{"a":{}},', SIZE),
        "16 MB of short strings": lambda: filled(b'"ab",', SIZE),
        "16 MB of floats": lambda: filled(b'{"f":"1.5"},', SIZE, b'{"l":[', b"]}"),
        "16 MB of long strings": lambda: filled(b'"' + b"x" * 4000 + b'",', SIZE),
        "the most floats a frame holds": lambda: filled(b'{"f":"1.5"},', 12 * (wire.MAX_JSON_ITEMS // 3 - 10),
                                                        b'{"l":[', b"]}"),
        "the most empty objects a frame holds": lambda: filled(b"{},", 3 * (wire.MAX_JSON_ITEMS // 2 - 10)),
    }
    outcome, added, peaks = {}, {}, []
    for name, make in frames.items():
        payload = make()
        gc.collect()
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # the peak (VmHWM) starts again from the current size
        before = status("VmRSS")
        try:
            value = wire.decode(payload)
            outcome[name] = f"decoded {len(value)} items"
            del value
        except wire.WireError as exc:
            outcome[name] = str(exc)
        added[name] = (status("VmHWM") - before) / 1024
        peaks.append(status("VmHWM") / 1024)
        del payload
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would count the test runner that forked us
    peak = max(peaks)
    print(json.dumps({"peak_mb": peak, "added_mb": added, "outcome": outcome}))
""")


def test_hostile_frames_are_decoded_within_bounded_memory():
    """Memory of decoding frames built to blow up json.loads (before the bounds, a 24 MB one took 1 GB)."""
    # large blocks straight from (and back to) the system, so that each frame's peak is its own
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 << 10)}
    done = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["outcome"] == {
        "24 MB of nested lists": "frame header too large",
        "16 MB of nested lists": "frame nested too deeply or too large",
        "16 MB of empty lists": "frame nested too deeply or too large",
        "16 MB of one-key objects": "frame nested too deeply or too large",
        "16 MB of short strings": "frame nested too deeply or too large",
        "16 MB of floats": "frame nested too deeply or too large",
        "16 MB of long strings": "unexpected node list",
        "the most floats a frame holds": f"decoded {wire.MAX_JSON_ITEMS // 3 - 10} items",
        "the most empty objects a frame holds": "unexpected node list",
    }
    # Gradescope gives the whole grading process 768 MB
    assert report["added_mb"]["24 MB of nested lists"] < 1, report
    assert max(report["added_mb"].values()) < 80, report
    assert report["peak_mb"] < 384, report


def test_either_falls_back_where_its_first_value_cannot_travel_and_the_frame_stays_whole():
    after = np.arange(3.0)
    payload = wire.encode({"a": wire.Either([np.ones(2), object()], ["fallback"]), "b": after})
    decoded = wire.decode(payload)
    assert decoded["a"] == ["fallback"]
    np.testing.assert_array_equal(decoded["b"], after)  # the abandoned array's bytes are not in the frame
    assert len(payload) == len(wire.encode({"a": ["fallback"], "b": after}))


def test_named_values_are_named_in_the_error():
    message = "the returned value[1] is an object of type object"
    with pytest.raises(wire.UnsupportedValue, match=re.escape(message)):
        wire.encode({"id": 1, "value": {"value": wire.Named([1, object()], "the returned value")}})
    assert wire.decode(wire.encode({"value": wire.Named([1, 2.5], "the returned value")})) == {"value": [1, 2.5]}
