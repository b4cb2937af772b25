"""Networks for graders: built in the worker from the grader's layers and parameters.

    enet = network(ENET_LAYERS, [p.detach() for p in reference_enet.parameters()])   # a Ref
    loss, (enet_grads, gnet_grads) = parameter_grads(nb.err, x, m, z, gnet, enet, of=(4, 3))

A submitted function that takes networks (``err(x, m, z, gnet, enet)``) is called with nets of
the reference's architecture that the trusted probe :func:`mlgrade.probes.network` builds, so
that the sheet's own network cells need not run and no student object reaches the grader;
``parameter_grads`` backpropagates the function's scalar output in the worker and returns the
gradient of every parameter of the nets named by position.
"""
from __future__ import annotations

from mlgrade import wire
from mlgrade.grading import RemoteFunction, SubmissionError, _describe_call, _run

__all__ = ["network", "parameter_grads"]


def network(layers: list, state: list) -> wire.Ref:
    """``nn.Sequential`` of ``layers`` ([name, *args]) with parameters ``state``, kept in the worker."""
    out = _run(None, "network", "building the grader's network", None, layers=[list(layer) for layer in layers],
               state=list(state))
    return wire.Ref(out["ref"])


def parameter_grads(fn: RemoteFunction, *args, of: tuple[int, ...]):
    """(value, [[gradient or None per parameter] per net]) of ``fn(*args)``, the nets at positions ``of``."""
    out = fn._probe("parameter_grads", _describe_call(fn.name, args, {}), args=list(args), modules=list(of))
    if out["grads"] is None:
        raise SubmissionError(f"{fn.name} returned {wire.describe(out['value'])}, not a scalar torch.Tensor: "
                              "no gradient can flow through it")
    return out["value"], out["grads"]
