"""Public checks of cs446-hw2, run by ``mlgrade check cs446-hw2`` (and counted by the autograder).

They check shapes, parameter counts, the residual structure (with weights chosen so that
the answer is known) and that gradients agree with finite differences of your own
forward pass. Passing them does not mean your code is right: the autograder compares
your modules and functions with a reference implementation on many more inputs.
"""
import numbers

import numpy as np
import pytest
import torch

from mlgrade import assert_close, check, run_module, student
from mlgrade.compare import float_array, unpack
from mlgrade.modules import ModuleRun, replayed_step

hw2 = student("hw2_ResNet")
em = student("hw2_EM")


def randn(seed, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def block_layout(C):
    """The contract's Block state in registration order: conv1, bn1, conv2, bn2 (weight, bias,
    running_mean, running_var, num_batches_tracked for each BatchNorm2d)."""
    entries = []
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
        entries.append((f"{conv}.weight", (C, C, 3, 3), "Conv2d"))
        entries += [(f"{bn}.{n}", (C,), "BatchNorm2d") for n in ("weight", "bias", "running_mean", "running_var")]
        entries.append((f"{bn}.num_batches_tracked", (), "BatchNorm2d"))
    n = len(entries)
    return ModuleRun("Block", [e[0] for e in entries], [e[1] for e in entries], ["?"] * n, [e[2] for e in entries],
                     list(range(n)), 18 * C * C + 4 * C)


@check("ResNet: 18C^2+25C+10 parameters, C={C} (public check)")
@pytest.mark.parametrize("C", [1, 4])
def test_resnet_parameter_count(C):
    net = run_module(hw2.ResNet, C)
    assert net.n_parameters == 18 * C * C + 25 * C + 10, \
        f"ResNet({C}) has {net.n_parameters} parameters, expected {18 * C * C + 25 * C + 10}: {net.listing()}"


@check("Block: output shape equals the input shape, a ReLU's output that is not zero and depends on x, C=3, 10x10 (public check)")
def test_block_shape():
    x = randn(0, 2, 3, 10, 10)
    out = run_module(hw2.Block, 3, x=x).train_output
    assert tuple(getattr(out, "shape", ())) == (2, 3, 10, 10), \
        f"Block(3) maps a (2, 3, 10, 10) tensor to {getattr(out, 'shape', type(out).__name__)}"
    # relu(x + f(x)): never negative, and zero everywhere only for a block that computes nothing
    assert bool((out >= 0).all()), f"Block(3)(x) has negative entries (min {float(out.min()):.4g}): the ReLU comes last"
    assert bool((out != 0).any()), "Block(3)(x) is zero everywhere"
    # and it is a function of x: a constant of the right shape is not negative nor zero either
    other = run_module(hw2.Block, 3, x=randn(1, 2, 3, 10, 10)).train_output
    assert not bool((out == other).all()), "Block(3) gives the same output for two different inputs: it ignores x"


@check("Block: relu(x + f(x)); with the last BatchNorm's weight 0, f(x) is its bias (public check)", weight=2)
def test_block_residual():
    """With bn2.weight = 0, f(x) = bn2.bias whatever conv1, bn1 and conv2 do, so
    Block(x) = relu(x + bias) in train and eval mode: the skip is added before the ReLU."""
    C = 3
    bias = torch.tensor([-1.0, 0.5, 2.0])
    one, zero = torch.ones(C), torch.zeros(C)
    state = [randn(1, C, C, 3, 3), one, zero, zero, one, torch.tensor(0),
             randn(2, C, C, 3, 3), zero, bias, zero, one, torch.tensor(0)]
    x = randn(3, 4, C, 6, 6)
    block = run_module(hw2.Block, C, state=state, x=x, expected=block_layout(C))
    expected = torch.relu(x + bias[None, :, None, None])
    assert_close(block.train_output, expected, rtol=1e-5, atol=1e-6, name="Block(x) in train mode")
    assert_close(block.eval_output, expected, rtol=1e-5, atol=1e-6, name="Block(x) in eval mode")


@check("ResNet: output shape (N, 10), not zero, depending on the images, C={C}, {H}x{H}, batch {N} (public check)")
@pytest.mark.parametrize("C,H,N", [(2, 8, 1), (4, 12, 5)])
def test_resnet_shape(C, H, N):
    out = run_module(hw2.ResNet, C, x=randn(4, N, 1, H, H))
    for mode, y in (("train", out.train_output), ("eval", out.eval_output)):
        shape = tuple(getattr(y, "shape", ()))
        assert shape == (N, 10), f"ResNet({C}) in {mode} mode maps ({N}, 1, {H}, {H}) to {shape}, expected ({N}, 10)"
        assert bool((y != 0).any()), f"ResNet({C}) in {mode} mode returns zeros: the logits of a random net are not"
    other = run_module(hw2.ResNet, C, x=randn(5, N, 1, H, H))
    for mode, y, z in (("train", out.train_output, other.train_output), ("eval", out.eval_output, other.eval_output)):
        assert not bool((y == z).all()), f"ResNet({C}) in {mode} mode gives the same logits for two different " \
                                         "batches: it ignores its input"


@check("{name}: input gradient agrees with finite differences (eval mode, float64), output neither zero nor its input (public check)")
@pytest.mark.parametrize("name", ["Block", "ResNet"])
def test_input_gradient(name):
    """Autograd's gradient g^T J at x0 against central differences (f(x0 + hv) - f(x0 - hv)) / 2h
    along random directions v, all in one eval-mode batch (its rows are independent)."""
    cls, C = getattr(hw2, name), 2
    shape = (1, C, 6, 6) if name == "Block" else (1, 1, 12, 12)
    x0 = randn(5, *shape, dtype=torch.float64)
    h, k = 1e-6, 3
    dirs = randn(6, k, *shape[1:], dtype=torch.float64)
    batch = torch.cat([x0, x0 + h * dirs, x0 - h * dirs])
    out_shape = (1 + 2 * k, *shape[1:]) if name == "Block" else (1 + 2 * k, 10)
    upstream = torch.zeros(out_shape, dtype=torch.float64)  # backpropagate g from row 0 only
    upstream[0] = g = randn(7, *out_shape[1:], dtype=torch.float64)
    run = run_module(cls, C, x=x0, dtype="float64", eval_x=batch, eval_grad_output=upstream)
    out = run.eval_output
    assert tuple(getattr(out, "shape", ())) == out_shape, \
        f"{name}({C}) in eval mode maps {tuple(batch.shape)} to {tuple(getattr(out, 'shape', ()))}, expected {out_shape}"
    # any differentiable function agrees with its finite differences: zeros and the input itself are refused
    assert bool((out != 0).any()), f"{name}({C}) in eval mode returns zeros"
    assert tuple(out.shape) != tuple(batch.shape) or not torch.equal(out, batch), f"{name}({C}) returns its input"
    # the gradient is that of the graph the worker traced on other inputs, replayed here on these
    _, grads = replayed_step(cls, C, state=run.state_after_train, x=batch, grad_output=upstream, mode="eval",
                             dtype="float64")
    grad = grads[-1]
    assert grad is not None, f"no gradient reached the input of {name}({C}) (keep forward in torch)"
    autograd = (grad[0] * dirs).flatten(1).sum(1)
    fd = ((out[1:1 + k] - out[1 + k:]) * g).flatten(1).sum(1) / (2 * h)
    assert_close(autograd, fd, rtol=1e-4, atol=1e-6, name="directional derivatives (autograd vs finite differences)")


@check("fit_and_evaluate: one train and one test error rate per epoch (public check, format only: no points)", weight=0)
def test_fit_shape():
    X, y = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(8))
    net = hw2.ResNet.remote(2)
    rates = hw2.fit_and_evaluate(net, X, y, X[:20], y[:20], 2, batch_size=16)
    assert isinstance(rates, (list, tuple)) and len(rates) == 2, "fit_and_evaluate returns (train_errors, test_errors)"
    for label, r in zip(("train_errors", "test_errors"), rates):
        assert isinstance(r, (list, tuple)) and len(r) == 2, f"{label}: expected a list of 2 rates for 2 epochs"
        assert all(isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v <= 1 for v in r), \
            f"{label}: rates in [0, 1], got {r}"


@check("e_step: a worked example, K=2, D=2 (public check)")
def test_e_step_example():
    """x = (1, 0), pi = (1/2, 1/2), P = ((0.9, 0.1), (0.1, 0.9)): p(x|1) = 0.81, p(x|2) = 0.01."""
    X = np.array([[1.0, 0.0]])
    eta = em.e_step(X, np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.1, 0.9]]))
    assert_close(eta, np.array([[0.81 / 0.82, 0.01 / 0.82]]), rtol=1e-5, atol=1e-10, check_dtype="kind", name="eta")


@check("e_step: finite, rows sum to 1 for D=784 (public check)")
def test_e_step_784():
    rng = np.random.default_rng(784)
    X = (rng.random((10, 784)) < 0.5).astype(float)
    P = np.where(rng.random((3, 784)) < 0.5, 0.05, 0.95)  # likelihoods near e^-1190: 0 in float64
    eta = np.asarray(em.e_step(X, np.full(3, 1 / 3), P))
    assert eta.shape == (10, 3), f"eta has shape {eta.shape}, expected (n, K) = (10, 3)"
    assert np.isfinite(eta).all(), "eta is not finite for D=784: compute in the log domain (logsumexp)"
    assert_close(eta.sum(axis=1), np.ones(10), rtol=1e-5, atol=1e-10, check_dtype="kind", name="row sums of eta")


@check("m_step: pi sums to 1 and P has shape (K, D) (public check)")
def test_m_step_properties():
    rng = np.random.default_rng(3)
    X = (rng.random((20, 6)) < 0.5).astype(float)
    pi, P = unpack(em.m_step(X, rng.dirichlet(np.ones(4), size=20)), 2, name="(pi, P)")
    float_array(P, name="P (K, D)", shape=(4, 6))
    assert_close(float(np.sum(float_array(pi, name="pi", shape=(4,)))), 1.0, rtol=1e-5, atol=1e-10, name="sum of pi")


@check("em: the log-likelihood increases and never decreases (public check)")
def test_em_monotone():
    rng = np.random.default_rng(5)
    X = (rng.random((100, 15)) < 0.4).astype(float)
    _, _, history = unpack(em.em(X, np.full(3, 1 / 3), rng.uniform(0.2, 0.8, size=(3, 15)), 15), 3,
                           name="(pi, P, history)")
    history = float_array(history, name="history (one value per iteration)", shape=(15,))
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[:-1])), f"the log-likelihood decreased: {history}"
    # a constant history never decreases either: from this start EM must also make progress
    assert history[-1] > history[0], f"the log-likelihood did not increase in 15 iterations: {history}"
