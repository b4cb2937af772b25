"""The student's gradient computation, captured in the worker as plain data.

    graph = capture(traced, placeholders)   # {"inputs": k, "nodes": [...], "output": ...}

``traced(*placeholders)`` calls the student's function and then ``torch.autograd.grad``, so
the recorded graph holds the forward computation *and* its backward: a custom
``autograd.Function``'s backward, a tensor hook, a ``.detach()`` are ops (or the absence of
ops) in it. It is recorded by ``torch.fx``'s ``make_fx`` at the level of aten operations and
sent as data: every placeholder is an input, every other node an aten call whose arguments
are earlier nodes or plain constants, or a tensor constant (what left torch, e.g. through
numpy, comes back as one). Nothing here judges the graph, or even checks its operations:
the grading process rebuilds it from an allow-list and replays it on inputs this process
never saw (:mod:`mlgrade.autograd_replay`), so whatever this module sends is what is judged.
"""
from __future__ import annotations

import operator

from mlgrade import probes, wire
from mlgrade.refusals import during
from mlgrade.worker_errors import ErrorKind

__all__ = ["CaptureError", "MAX_NODES", "MAX_CONSTANT_ELEMENTS", "capture"]

MAX_NODES = 20_000  # nodes of one graph (the grading process enforces it again)
MAX_CONSTANT_ELEMENTS = 4 << 20  # elements of all tensor constants of one graph


class CaptureError(Exception):
    """The computation cannot be sent as a graph (too large, an argument of another kind)."""


def _value(arg, index: dict):
    import torch
    import torch.fx

    if isinstance(arg, torch.fx.Node):
        return {"node": index[arg]}
    if arg is None or type(arg) in (bool, int, float, str):
        return arg
    if isinstance(arg, (list, tuple)):
        return [_value(a, index) for a in arg]
    if isinstance(arg, torch.dtype):
        return {"dtype": str(arg).removeprefix("torch.")}
    if isinstance(arg, torch.device):
        return {"device": arg.type}
    if isinstance(arg, torch.layout):
        return {"layout": str(arg).removeprefix("torch.")}
    if isinstance(arg, torch.memory_format):
        return {"memory_format": str(arg).removeprefix("torch.")}
    raise CaptureError(f"an argument of type {type(arg).__name__}")


def _target(fn) -> str:
    if fn is operator.getitem:
        return "getitem"
    return str(fn)  # an OpOverload prints as "aten.mm.default"


def to_data(gm) -> dict:
    """The ``make_fx`` graph module ``gm`` as lists, numbers, strings and tensors."""
    import torch

    index, nodes, inputs, output, constants = {}, [], 0, None, 0
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if nodes:
                raise CaptureError("an input after the first operation")
            index[node] = inputs
            inputs += 1
            continue
        if node.op == "output":
            output = _value(node.args[0], index)
            break
        if len(nodes) >= MAX_NODES:
            raise CaptureError(f"more than {MAX_NODES} operations")
        if node.op == "get_attr":
            tensor = getattr(gm, node.target)
            if not isinstance(tensor, torch.Tensor):
                raise CaptureError(f"a constant of type {type(tensor).__name__}")
            constants += tensor.numel()
            if constants > MAX_CONSTANT_ELEMENTS:
                raise CaptureError(f"tensor constants of more than {MAX_CONSTANT_ELEMENTS} elements")
            nodes.append(["constant", tensor.detach().clone()])
        elif node.op == "call_function":
            nodes.append(["call", _target(node.target), _value(list(node.args), index),
                          {k: _value(v, index) for k, v in node.kwargs.items()}])
        else:
            raise CaptureError(f"a node of kind {node.op}")
        index[node] = inputs + len(nodes) - 1
    return {"inputs": inputs, "nodes": nodes, "output": output}


def capture(traced, placeholders: list) -> dict:
    """Record ``traced(*placeholders)`` (tensors in, a nest of tensors and None out) as data."""
    from torch.fx.experimental.proxy_tensor import make_fx

    # a value read out of a tensor (.item(), an if on a tensor) is taken as it is during the trace: a
    # constant of the graph, right for these inputs only (the grading process replays on others)
    return to_data(make_fx(traced, tracing_mode="real", _error_on_data_dependent_ops=False)(*placeholders))


def gradient_of(fn, place, wrt: list, grad_output: bool):
    """The function ``make_fx`` traces: ``fn`` on the placeholders, then autograd.

    ``place(flat)`` puts the placeholders where the call takes them and returns ``(args,
    kwargs)``; the last placeholder is the upstream gradient when ``grad_output``. The leaves
    (``wrt``: positions among the placeholders) require a gradient before the trace. The result
    is ``[value, [gradient or None per leaf]]``, or ``[value or None, None]`` when the value is
    not a tensor that gradients can flow from.
    """
    import torch

    def traced(*flat):
        flat = list(flat)
        upstream = flat.pop() if grad_output else None
        call_args, call_kwargs = place(flat)
        out = fn(*call_args, **call_kwargs)
        leaves = [flat[i] for i in wrt]
        if not isinstance(out, torch.Tensor) or not out.requires_grad or not leaves:
            return [out if isinstance(out, torch.Tensor) else None, None]
        if upstream is None and out.numel() != 1:  # nothing to differentiate: the grading process says so
            return [out, None]
        return [out, list(torch.autograd.grad(out, leaves, upstream, allow_unused=True))]

    return traced


def _placed(net, tensors) -> None:
    """Make ``tensors`` the parameters of ``net`` (the placeholders, in ``parameters()`` order)."""
    it = iter(tensors)
    for module in net.modules():
        for name in list(module._parameters):
            if module._parameters[name] is not None:
                module._parameters[name] = next(it)


@probes.register
def gradient_graph(worker, target, args=(), kwargs=None, nets=(), wrt=(), grad_output=None):
    """Capture ``target(*args, **kwargs)`` and its gradient as a graph (data; see :func:`capture`).

    The placeholders are, in order: every tensor among ``args``, then among ``kwargs``; the
    parameters of the networks ``nets`` ([position, layers, state]: an ``nn.Sequential`` built
    here, passed at that position); ``grad_output`` when given. ``wrt`` lists the placeholders
    the gradient is taken for. The inputs here are not the grader's: the grading process
    replays the graph on its own (:mod:`mlgrade.autograd_replay`). Returns ``{"graph": ...,
    "returned": what the function returned, described}``.
    """
    import torch

    fn = probes.lookup(worker, target)
    args, kwargs = list(args), dict(kwargs or {})
    slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)] + \
            [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    flat = [(args[s] if type(s) is int else kwargs[s]).detach().clone() for s in slots]
    built = []
    for position, layers, state in nets:
        net = probes.sequential(layers, state)
        built.append((position, net, len(flat)))
        flat += [p.detach().clone() for p in net.parameters()]
    for i in wrt:
        if flat[i].is_floating_point():
            flat[i].requires_grad_(True)
    if grad_output is not None:
        flat.append(grad_output)
    returned = []

    def place(tensors):
        call_args, call_kwargs = list(args), dict(kwargs)
        for slot, tensor in zip(slots, tensors):
            if type(slot) is int:
                call_args[slot] = tensor
            else:
                call_kwargs[slot] = tensor
        for position, net, start in built:
            _placed(net, tensors[start:start + len(list(net.parameters()))])
            call_args[position] = net
        return call_args, call_kwargs

    def call(*a, **k):
        out = fn(*a, **k)
        returned.append(wire.describe(out))
        return out

    try:
        with during(".".join(target[1:])):
            graph = capture(gradient_of(call, place, list(wrt), grad_output is not None), flat)
    except CaptureError as exc:
        raise probes.ProbeError(ErrorKind.UNSUPPORTED,
                                f"its computation cannot be sent to the grader as a graph: {exc}") from None
    return {"graph": graph, "returned": returned[-1] if returned else None}


@probes.register
def module_gradient_graph(worker, target, args=(), kwargs=None, state=(), x=None, grad_output=None, wrt=(), seed=0,
                          mode="train"):
    """Capture one step of the module ``target(*args, **kwargs)`` in ``mode`` ("train", "eval") as a graph (data).

    The placeholders are the module's parameters and buffers (``state``, in
    :func:`mlgrade.probes.module_state` order, put in place of the module's own tensors wherever
    the module holds them), then ``x``, then ``grad_output``; the graph's output is ``[output,
    [gradient or None per state entry in wrt, then for x]]`` of ``sum(output * grad_output)``.
    Running statistics are written into their placeholders, as the module writes them.
    """
    import torch

    cls = probes.lookup(worker, target)
    if not callable(cls):
        raise probes.ProbeError(ErrorKind.MISSING, f"{'.'.join(target)} is not callable")
    torch.manual_seed(seed)
    with during(".".join(target[1:])):
        module = cls(*args, **dict(kwargs or {}))
    if not isinstance(module, torch.nn.Module):
        raise probes.ProbeError(ErrorKind.TYPE, f"{'.'.join(target)}(...) made a {type(module).__name__}, "
                                "not a torch.nn.Module")
    entries = probes.module_state(module)
    if len(entries) != len(state) or any(tuple(e[1].shape) != tuple(s.shape) for e, s in zip(entries, state)):
        raise probes.ProbeError(ErrorKind.STATE, "its parameters and buffers cannot take the reference's")
    position = {id(e[1]): i for i, e in enumerate(entries)}
    slots = [(table, name, position[id(tensor)]) for owner in torch.nn.Module.modules(module)
             for table in (owner._parameters, owner._buffers) for name, tensor in table.items()
             if tensor is not None and id(tensor) in position]
    flat = [s.detach().clone() for s in state] + [x.detach().clone(), grad_output]
    for i in [*wrt, len(state)]:
        if flat[i].is_floating_point():
            flat[i].requires_grad_(True)

    def traced(*tensors):
        for table, name, i in slots:
            table[name] = tensors[i]
        module.train(mode != "eval")
        torch.manual_seed(seed)
        out = module(tensors[len(state)])
        leaves = [tensors[i] for i in wrt] + [tensors[len(state)]]
        if not isinstance(out, torch.Tensor) or not out.requires_grad or out.shape != tensors[-1].shape:
            return [out if isinstance(out, torch.Tensor) else None, None]
        return [out, list(torch.autograd.grad(out, leaves, tensors[-1].to(out.dtype), allow_unused=True))]

    try:
        with during(".".join(target[1:])):
            graph = capture(traced, flat)
    except CaptureError as exc:
        raise probes.ProbeError(ErrorKind.UNSUPPORTED,
                                f"its computation cannot be sent to the grader as a graph: {exc}") from None
    return {"graph": graph}
