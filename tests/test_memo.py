"""mlgrade.memo: a reference answers each plain-data question once, and is otherwise unchanged."""
from __future__ import annotations

import textwrap
import types

import numpy as np
import pytest
import torch

from mlgrade.memo import MemoizedModule, fingerprint

SOURCE = textwrap.dedent('''
    import numpy as np
    import torch

    CALLS = []
    SCALE = 2.0

    def scaled(x, k=1):
        CALLS.append("scaled")
        return {"y": x * SCALE * k, "shape": x.shape}

    def noisy(x):
        CALLS.append("noisy")
        return x + np.random.normal(size=x.shape)

    def torch_noisy(x):
        CALLS.append("torch_noisy")
        return x + torch.randn(x.shape)

    def normalize_in_place(x):
        CALLS.append("normalize_in_place")
        x /= np.abs(x).sum()
        return x.copy()

    def square(t):
        CALLS.append("square")
        return t * t

    def describe(obj):
        CALLS.append("describe")
        return type(obj).__name__

    class Model:
        pass
''')


@pytest.fixture
def ref():
    module = types.ModuleType("mlgrade_reference.test.memo_ref")
    exec(compile(SOURCE, "memo_ref.py", "exec"), module.__dict__)
    return MemoizedModule(module)


def calls(ref, name):
    return ref.CALLS.count(name)


def test_an_answer_is_computed_once_per_input_content(ref):
    x = np.arange(6.0).reshape(2, 3)
    first = ref.scaled(x, k=3)
    again = ref.scaled(x.copy(), k=3)  # another array, same content
    assert calls(ref, "scaled") == 1
    np.testing.assert_array_equal(again["y"], x * 6.0)
    assert again["shape"] == (2, 3)
    ref.scaled(x, k=4)
    ref.scaled(x.astype(np.float32), k=3)  # the dtype is part of the question
    ref.scaled(x.reshape(3, 2), k=3)  # and so is the shape
    assert calls(ref, "scaled") == 4
    assert first is not again and first["y"] is not again["y"]


def test_a_remembered_answer_is_a_fresh_copy(ref):
    x = np.ones(3)
    ref.scaled(x)["y"][:] = -1  # a grader that modifies what it got
    np.testing.assert_array_equal(ref.scaled(x)["y"], 2 * np.ones(3))


def test_the_global_random_state_is_part_of_the_question_and_left_as_a_real_call_leaves_it(ref):
    x = np.zeros(4)
    np.random.seed(0)
    first = ref.noisy(x)
    after_first = np.random.normal()
    np.random.seed(0)
    again = ref.noisy(x)
    after_again = np.random.normal()
    assert calls(ref, "noisy") == 1
    np.testing.assert_array_equal(first, again)
    assert after_first == after_again  # the generator moved on as if the reference had run
    np.random.seed(1)
    other = ref.noisy(x)
    assert calls(ref, "noisy") == 2 and not np.array_equal(first, other)


def test_torch_generator_too(ref):
    x = torch.zeros(3)
    torch.manual_seed(0)
    first, next_first = ref.torch_noisy(x), torch.rand(1)
    torch.manual_seed(0)
    again, next_again = ref.torch_noisy(x), torch.rand(1)
    assert calls(ref, "torch_noisy") == 1
    torch.testing.assert_close(first, again)
    torch.testing.assert_close(next_first, next_again)


def test_a_function_that_modifies_its_arguments_always_runs(ref):
    for _ in range(3):
        x = np.array([1.0, -3.0])
        ref.normalize_in_place(x)
        np.testing.assert_allclose(x, [0.25, -0.75])  # the side effect happens every time
    assert calls(ref, "normalize_in_place") == 3


def test_gradients_flow_through_the_reference(ref):
    for _ in range(2):
        t = torch.tensor([1.0, 3.0], requires_grad=True)
        ref.square(t).sum().backward()
        torch.testing.assert_close(t.grad, torch.tensor([2.0, 6.0]))
    assert calls(ref, "square") == 2
    plain = torch.tensor([1.0, 3.0])
    ref.square(plain), ref.square(plain.clone())
    assert calls(ref, "square") == 3


def test_objects_are_not_plain_data(ref):
    ref.describe(ref.Model()), ref.describe(ref.Model())
    ref.describe(np.random.default_rng(0)), ref.describe(np.random.default_rng(0))
    assert calls(ref, "describe") == 4


def test_everything_else_is_the_module_itself(ref):
    assert ref.Model is ref._module.Model and ref.SCALE == 2.0 and ref.np is np
    assert ref.scaled.__name__ == "scaled" and ref.scaled.__wrapped__ is ref._module.scaled


@pytest.mark.parametrize("value,plain", [
    (np.zeros((2, 2)), True), ([1, "a", None, (2.5, b"x")], True), ({"k": torch.ones(2)}, True),
    (np.array([object()]), False), (torch.ones(2, requires_grad=True), False), ({1, 2}, False),
    (torch.ones(2).to_sparse(), False),
])
def test_fingerprint_of_plain_data_only(value, plain):
    assert (fingerprint(value) is not None) == plain


def test_fingerprints_tell_apart_what_differs():
    base = fingerprint(np.zeros(4))[0]
    assert fingerprint(np.zeros(4))[0] == base
    assert base not in {fingerprint(v)[0] for v in (np.zeros(4, dtype=np.float32), np.zeros((2, 2)), torch.zeros(4),
                                                    np.zeros(4).tolist(), np.ones(4))}
    assert fingerprint([1, 2])[0] != fingerprint((1, 2))[0] != fingerprint([1.0, 2.0])[0]


def test_a_grader_that_changes_the_reference_gets_fresh_answers(ref, monkeypatch):
    x = np.ones(2)
    np.testing.assert_array_equal(ref.scaled(x)["y"], [2.0, 2.0])
    monkeypatch.setattr(ref, "SCALE", 5.0)
    assert ref._module.SCALE == 5.0
    np.testing.assert_array_equal(ref.scaled(x)["y"], [5.0, 5.0])
    monkeypatch.undo()
    np.testing.assert_array_equal(ref.scaled(x)["y"], [2.0, 2.0])
    assert calls(ref, "scaled") == 3


def test_remembered_answers_stay_within_their_memory_budget(ref, monkeypatch):
    from mlgrade import memo

    monkeypatch.setattr(memo, "MAX_BYTES", 3 * 8 * 1000)
    xs = [np.full(1000, float(i)) for i in range(5)]  # 8 kB answers: three fit
    for x in xs:
        ref.scaled(x)
    assert memo.held_bytes() <= memo.MAX_BYTES
    ref.scaled(xs[4]), ref.scaled(xs[3])
    assert calls(ref, "scaled") == 5  # the most recent are kept
    ref.scaled(xs[0])
    assert calls(ref, "scaled") == 6  # the oldest was let go
    big = np.zeros(memo.MAX_ENTRY_BYTES // 8 + 1)
    ref.scaled(big), ref.scaled(big)
    assert calls(ref, "scaled") == 8  # too large to keep at all
