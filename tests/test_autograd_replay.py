"""mlgrade.autograd_capture and mlgrade.autograd_replay: gradients traced in the worker, judged here.

The worker's side runs in this process (a Worker with the bound probe table, as tests/test_probes.py
does); what it sends goes through the wire, and the grading process's side rebuilds and replays it.
"""
from __future__ import annotations

import re
import types

import pytest
import torch

from mlgrade import autograd_replay, probes, wire
from mlgrade.autograd_replay import GraphRefused, ReplayFailed, rebuild, replay
from mlgrade.gradients import decoy
from mlgrade.worker import Worker

FLIPS = '''
import torch
import torch.nn.functional as F


class Flip(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value):
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def detach_times_two(x, m, z, gnet, enet):
    g = gnet(z)
    g = g.detach() * 2 - g
    return F.softplus(enet(x) - enet(z * (1 - m) + m * g)).mean()


def function(x, m, z, gnet, enet):
    return F.softplus(enet(x) - enet(z * (1 - m) + m * Flip.apply(gnet(z)))).mean()


def hook(x, m, z, gnet, enet):
    g = gnet(z)
    g.register_hook(lambda grad: -grad)
    return torch.log1p(torch.exp(enet(x) - enet(torch.where(m.bool(), g, z)))).mean()


def boolean_patch(x, m, z, gnet, enet):
    r = z.clone()
    r[m.bool()] = Flip.apply(gnet(z))[m.bool()]
    return F.softplus(enet(x) - enet(r)).mean()


def no_flip(x, m, z, gnet, enet):
    return F.softplus(enet(x) - enet(z * (1 - m) + m * gnet(z))).mean()


def numpy_reparameterize(mu, log_sigma, eps):
    return torch.as_tensor(mu.detach().numpy() + log_sigma.detach().exp().numpy() * eps.detach().numpy())


def reparameterize(mu, log_sigma, eps):
    return mu + torch.exp(log_sigma) * eps


def drawn_noise(mu, log_sigma, eps):
    return mu + torch.exp(log_sigma) * torch.randn_like(mu)
'''
GNET = [["Linear", 12, 5], ["ReLU"], ["Linear", 5, 12], ["Tanh"]]
ENET = [["Linear", 12, 4], ["LeakyReLU", 0.2], ["Linear", 4, 1]]


@pytest.fixture(scope="module")
def worker():
    worker = Worker(probes.bind())
    module = types.ModuleType("sub")
    exec(FLIPS, module.__dict__)
    worker.modules["sub"] = module
    return worker


def capture(worker, name, **kwargs) -> dict:
    """What the worker's gradient_graph probe sends, through the wire."""
    request = {"op": "probe", "probe": "gradient_graph", "kwargs": {"target": ["sub", name], "kwargs": {}, **kwargs}}
    return wire.decode(wire.encode(worker.handle(request)))


def sequential(layers, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(*(getattr(torch.nn, name)(*args) for name, *args in layers))


def err_problem(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 12, generator=g) * 2 - 1
    m = (torch.rand(3, 12, generator=g) > 0.6).float()
    return x, m, x * (1 - m), sequential(GNET, seed), sequential(ENET, seed + 1)


def flipped_grads(x, m, z, gnet, enet):
    """The grading process's own autograd: minus gnet's gradients of the loss, enet's as they are."""
    for net in (gnet, enet):
        net.zero_grad(set_to_none=True)
    loss = torch.nn.functional.softplus(enet(x) - enet(z * (1 - m) + m * gnet(z))).mean()
    loss.backward()
    return loss.detach(), [-p.grad for p in gnet.parameters()] + [p.grad for p in enet.parameters()]


def err_graph(worker, name, seed):
    """The graph of ``name`` captured on the problem of ``seed + 100``, replayed on that of ``seed``."""
    x, m, z, gnet, enet = err_problem(seed + 100)
    reply = capture(worker, name, args=[x, m, z, None, None], wrt=list(range(3, 11)),
                    nets=[[3, GNET, [p.detach() for p in gnet.parameters()]],
                          [4, ENET, [p.detach() for p in enet.parameters()]]])
    x, m, z, gnet, enet = err_problem(seed)
    params = [p.detach() for p in [*gnet.parameters(), *enet.parameters()]]
    value, grads = replay(rebuild(reply["graph"], 11), [x, m, z, *params])
    return (value, grads), flipped_grads(x, m, z, gnet, enet)


@pytest.mark.parametrize("name", ["detach_times_two", "function", "hook", "boolean_patch"])
def test_every_way_of_writing_the_flip_replays_to_the_flipped_gradients_on_other_inputs(worker, name):
    (value, grads), (loss, expected) = err_graph(worker, name, seed=3)
    torch.testing.assert_close(value, loss)
    torch.testing.assert_close(grads, expected)


def test_a_missing_flip_replays_to_the_unflipped_gradients(worker):
    (_, grads), (_, expected) = err_graph(worker, "no_flip", seed=3)
    torch.testing.assert_close(grads[:4], [-g for g in expected[:4]])


def test_numpy_arrives_as_constants_right_for_the_inputs_the_worker_saw_only():
    """What the engine guards against: the same graph is right on the worker's inputs, wrong on others."""
    worker = Worker(probes.bind())
    module = types.ModuleType("sub")
    exec(FLIPS, module.__dict__)
    worker.modules["sub"] = module
    g = torch.Generator().manual_seed(0)
    mu, log_sigma, eps, upstream = (torch.randn(4, 3, generator=g) for _ in range(4))
    reply = capture(worker, "numpy_reparameterize", args=[mu, log_sigma, eps], wrt=[0, 1], grad_output=upstream)
    graph = rebuild(reply["graph"], 4)
    value, grads = replay(graph, [mu, log_sigma, eps, upstream])
    torch.testing.assert_close(value, mu + log_sigma.exp() * eps)
    assert grads is None
    other = [decoy(t) for t in (mu, log_sigma, eps, upstream)]
    torch.testing.assert_close(replay(graph, other)[0], value)  # a constant, whatever the inputs
    assert not torch.allclose(value, other[0] + other[1].exp() * other[2])


def test_decoys_keep_shape_dtype_and_values_in_another_order_the_same_on_every_run():
    t = torch.arange(12.0).reshape(3, 4)
    d = decoy(t)
    assert d.shape == t.shape and d.dtype == t.dtype and not torch.equal(d, t)
    assert torch.equal(d.flatten().sort().values, t.flatten()) and torch.equal(decoy(t), d)


def test_drawn_noise_is_refused_with_a_message(worker):
    mu = torch.zeros(3)
    reply = capture(worker, "drawn_noise", args=[mu, mu, mu], wrt=[0, 1], grad_output=torch.ones(3))
    with pytest.raises(GraphRefused, match=re.escape("it draws random numbers (torch.ops.aten.randn_like.default)")):
        rebuild(reply["graph"], 4)


# -- forged graphs: what a worker could send instead ------------------------------------------

def graph(nodes, output, inputs=1):
    return {"inputs": inputs, "nodes": nodes, "output": output}


FORGED = {
    "not a graph": (["nodes"], "not a graph"),
    "another input count": (graph([], {"node": 0}, inputs=2), "a graph of 2 inputs, expected 1"),
    "an op outside aten": (graph([["call", "builtins.eval.default", ["1"], {}]], {"node": 1}),
                           "an operation named 'builtins.eval.default', not one of torch.ops.aten"),
    "an op outside the allow-list": (graph([["call", "aten.save.default", [{"node": 0}], {}]], {"node": 1}),
                                     "it uses torch.ops.aten.save.default, which is not among"),
    "an overload torch does not have": (graph([["call", "aten.mul.__reduce__", [{"node": 0}], {}]], {"node": 1}),
                                        "an operation torch does not have"),
    "an out= overload": (graph([["call", "aten.mul.out", [{"node": 0}, {"node": 0}], {"out": {"node": 0}}]],
                               {"node": 1}), "it writes into an out= tensor"),
    "a reference forward": (graph([["call", "aten.neg.default", [{"node": 1}], {}]], {"node": 1}),
                            "an argument the grader does not replay"),
    "a device": (graph([["call", "aten._to_copy.default", [{"node": 0}], {"device": {"device": "cuda"}}]],
                       {"node": 1}), "an argument the grader does not replay"),
    "a malformed node": (graph([["exec", "import os"]], {"node": 1}), "a malformed node (#0)"),
    "too large a tensor": (graph([["call", "aten.zeros.default", [[1 << 14, 1 << 14]], {}]], {"node": 1}),
                           "would make a tensor of more than"),
    "too much work": (graph([["call", "aten.mm.default", [{"node": 0}, {"node": 0}], {}]] * 400 +
                            [["call", "aten.expand.default", [{"node": 0}, [4096, 4096]], {}]] +
                            [["call", "aten.mm.default", [{"node": 401}, {"node": 401}], {}]] * 3000,
                            {"node": 1}), "more than the grader's budget"),
}


@pytest.mark.parametrize("case", FORGED)
def test_a_forged_graph_is_refused_before_anything_is_computed_beyond_its_budget(case):
    data, message = FORGED[case]
    data = wire.decode(wire.encode(data))
    with pytest.raises(GraphRefused, match=re.escape(message)):
        replay(rebuild(data, 1), [torch.ones(1, 1)])


def test_an_operation_that_fails_on_the_graders_inputs_is_the_submissions_failure():
    data = graph([["call", "aten.view.default", [{"node": 0}, [6]], {}]], {"node": 1})
    with pytest.raises(ReplayFailed, match=re.escape("torch.ops.aten.view.default raised RuntimeError")):
        replay(rebuild(data, 1), [torch.ones(2, 2)])


def test_arguments_of_the_wrong_kind_are_the_submissions_failure_not_the_graders():
    data = graph([["call", "aten.add.Tensor", [{"node": 0}, "text"], {}]], {"node": 1})
    with pytest.raises(ReplayFailed, match=re.escape("torch.ops.aten.add.Tensor raised")):
        replay(rebuild(data, 1), [torch.ones(2)])


def test_uninitialised_memory_is_zeroed():
    data = graph([["call", "aten.empty.memory_format", [[64]], {}]], {"node": 1})
    assert torch.equal(replay(rebuild(data, 1), [torch.ones(1)]), torch.zeros(64))


def test_the_allow_list_has_no_random_or_io_operation():
    assert not {op for op in autograd_replay.ALLOWED if any(word in op for word in autograd_replay.RANDOM)}
    assert not autograd_replay.ALLOWED & {"save", "load", "from_file", "_assert_async", "set_", "resize_", "print"}
