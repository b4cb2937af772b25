"""mlgrade.trivial: submissions generated from the reference, to grade the graders."""
import numpy as np
import pytest
import torch

from mlgrade.trivial import patch_source

SOURCE = '''
import numpy as np

def scale(x, factor=2.0):
    return factor * np.asarray(x, dtype=float)

def total(x):
    return float(scale(x).sum()), [scale(x)]

class Twice(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = torch.nn.Linear(n, n)

    def forward(self, x):
        return 2 * x + 1
'''


def run(kind):
    namespace = {"torch": torch}
    exec(patch_source(SOURCE, {"scale", "total", "Twice"}, kind), namespace)
    return namespace


def test_zeros_are_those_of_the_reference_answer_and_stubs_never_feed_each_other():
    ns = run("zeros")
    out = ns["scale"]([1.0, 2.0])
    assert out.dtype == np.float64 and out.tolist() == [0.0, 0.0]
    value, (array,) = ns["total"]([1.0, 2.0])
    assert (type(value), value, array.tolist()) == (float, 0.0, [0.0, 0.0])
    assert ns["_mlgrade_original_total"]([1.0, 2.0])[0] == 6.0


def test_a_trivial_class_has_the_reference_base_but_none_of_its_layers():
    ns = run("zeros")
    module = ns["Twice"](3)
    assert isinstance(module, torch.nn.Module) and list(module.parameters()) == []
    x = torch.ones(2, 3, requires_grad=True)
    y = module(x)
    assert y.shape == (2, 3) and not y.detach().any() and y.requires_grad  # zeros that still backpropagate
    assert torch.equal(run("first_argument")["Twice"](3)(x), x)
    assert run("none")["Twice"](3)(x) is None


def test_first_argument_none_raises_keep_the_signature():
    assert run("first_argument")["scale"](x=[3.0]) == [3.0]
    assert run("none")["total"]([1.0]) is None
    with pytest.raises(NotImplementedError):
        run("raises")["scale"]([1.0])
    with pytest.raises(TypeError):
        run("zeros")["scale"]([1.0], 2.0, 3.0)


def test_float32_casts_numpy_floats_and_unchanged_is_the_reference():
    value, (array,) = run("float32")["total"]([1.0, 2.0])
    assert type(value) is np.float32 and value == 6.0 and array.dtype == np.float32
    value, (array,) = run("unchanged")["total"]([1.0, 2.0])
    assert (value, array.tolist()) == (6.0, [2.0, 4.0])
    assert len(list(run("unchanged")["Twice"](3).parameters())) == 2


def test_constants_have_the_reference_answer_type_shape_and_dtype():
    ns = run("constant")
    out = ns["scale"]([1.0, 2.0])
    assert out.dtype == np.float64 and out.tolist() == [0.123, 0.123]
    value, (array,) = ns["total"]([1.0, 2.0])
    assert (type(value), value, array.tolist()) == (float, 0.123, [0.123, 0.123])
    x = torch.ones(2, 3, requires_grad=True)
    y = ns["Twice"](3)(x)
    assert y.shape == (2, 3) and torch.allclose(y.detach(), torch.full((2, 3), 0.123)) and y.requires_grad
