"""Gradients of submitted functions, judged in the grading process.

    y, (d_a, d_b) = module.f.grad(a, b, eps, wrt=(0, 1), grad_output=upstream)
    loss, (g_grads, e_grads) = parameter_grads(module.loss, x, z, gnet, enet, of=(2, 3))

The worker never sees the grader's inputs here. It is sent decoys (each tensor's elements in
an order drawn from a hash of the tensor, the networks' parameters likewise), traces the
student's function and ``torch.autograd.grad`` on them into a graph of aten operations
(:mod:`mlgrade.autograd_capture`), and sends that graph back as data. The grading process
rebuilds it from an allow-list and replays it on the grader's own tensors and parameters
(:mod:`mlgrade.autograd_replay`): the value and the gradients a grader compares are computed
here. What the worker process reports about itself never enters a verdict: a faked gradient,
finite differences of a numpy function, any number read out of torch is a constant of the graph,
right for the decoys at best, and the comparison on the grader's inputs fails.
"""
from __future__ import annotations

import hashlib

from mlgrade.autograd_replay import GraphRefused, ReplayFailed, rebuild, replay
from mlgrade.grading import SubmissionError, _describe_call, _run

__all__ = ["decoy", "gradient", "replayed"]

MSG_REFUSED = ("{call}: the grader replays your computation and its gradients from the torch operations "
               "it runs, and cannot here: {why}")
MSG_FAILED = ("{call}: your computation, traced on other inputs of the same shapes, does not run on the test's "
              "inputs ({why}); it should depend on its inputs only through torch operations")
MSG_NOT_TENSOR = "{name} returned {returned}, not a torch.Tensor: no gradient can flow through it"
MSG_NOT_SCALAR = "{name} returned {returned}, not a scalar torch.Tensor: no gradient can flow through it"


def decoy(tensor):
    """A tensor of the same shape, dtype and values as ``tensor``, its elements in another order.

    The order is drawn from a hash of the tensor's bytes, so it is the same on every run and
    cannot be undone without the tensor itself.
    """
    import torch

    t = tensor.detach()
    if t.numel() < 2:
        return t.clone()
    digest = hashlib.sha256(t.contiguous().cpu().numpy().tobytes()).digest()
    order = torch.randperm(t.numel(), generator=torch.Generator().manual_seed(int.from_bytes(digest[:7], "little")))
    return t.reshape(-1)[order].reshape(t.shape).clone()


def gradient(module: str, path: tuple, name: str, args, kwargs, wrt=(), grad_output=None, nets=None,
             timeout=None, scalar: bool = False):
    """(value, [gradient or None per leaf], or None when no gradient can flow) of the submitted
    ``path`` on the grader's ``args``, computed here from the graph the worker traced on decoys.

    Leaves: the tensors of ``args`` at the positions ``wrt``, then the parameters of every network
    ``nets`` ({position: (layers, state)}) in order; the networks' places in ``args`` hold Refs.
    """
    import torch

    nets = nets or {}
    args, kwargs = list(args), dict(kwargs)
    slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and i not in nets] + \
            [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    real = [args[s] if type(s) is int else kwargs[s] for s in slots]
    leaves = [slots.index(i) for i in wrt]
    sent_args = [decoy(a) if i in slots else (None if i in nets else a) for i, a in enumerate(args)]
    sent_kwargs = {k: decoy(v) if k in slots else v for k, v in kwargs.items()}
    sent_nets = []
    for position, (layers, state) in sorted(nets.items()):
        sent_nets.append([position, [list(layer) for layer in layers], [decoy(p) for p in state]])
        leaves += range(len(real), len(real) + len(state))
        real += list(state)
    call = _describe_call(name, args, kwargs)
    reply = _run(module, "gradient_graph", call, timeout, target=[module, *path], args=sent_args,
                 kwargs=sent_kwargs, nets=sent_nets, wrt=leaves,
                 grad_output=None if grad_output is None else decoy(grad_output))
    if grad_output is not None:
        real.append(grad_output)
    returned = str(reply.get("returned") if isinstance(reply, dict) else None)[:200]
    value, grads = replayed(reply, real, call)
    if not isinstance(value, torch.Tensor) or scalar and value.numel() != 1:
        raise SubmissionError((MSG_NOT_SCALAR if scalar else MSG_NOT_TENSOR).format(name=name, returned=returned))
    if grads is None and grad_output is None and value.numel() != 1 and leaves:
        raise SubmissionError(f"{call}: expected a scalar output to differentiate, got shape {tuple(value.shape)}")
    if grads is None:
        return value, [None] * len(leaves)
    if not (isinstance(grads, list) and len(grads) == len(leaves)
            and all(g is None or isinstance(g, torch.Tensor) for g in grads)):
        raise SubmissionError(MSG_REFUSED.format(call=call, why="its graph gives another number of gradients"))
    return value, grads


def replayed(reply, inputs: list, call: str):
    """The ``[value, gradients]`` of the graph in a probe's ``reply``, replayed here on ``inputs``."""
    try:
        graph = rebuild(reply.get("graph") if isinstance(reply, dict) else None, len(inputs))
        out = replay(graph, inputs)
    except GraphRefused as exc:
        raise SubmissionError(MSG_REFUSED.format(call=call, why=exc)) from None
    except ReplayFailed as exc:
        raise SubmissionError(MSG_FAILED.format(call=call, why=exc)) from None
    if not (isinstance(out, list) and len(out) == 2):
        raise SubmissionError(MSG_REFUSED.format(call=call, why="its graph does not give a value and gradients"))
    return out
