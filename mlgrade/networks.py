"""Networks for graders: built in the worker from the grader's layers and parameters.

    enet = network(ENET_LAYERS, [p.detach() for p in reference_enet.parameters()])   # a Ref
    loss, (enet_grads, gnet_grads) = parameter_grads(nb.err, x, m, z, gnet, enet, of=(4, 3))

A submitted function that takes networks (``err(x, m, z, gnet, enet)``) is called with nets of
the reference's architecture that the trusted probe :func:`mlgrade.probes.network` builds, so
that the sheet's own network cells need not run and no student object reaches the grader.
``parameter_grads`` is judged in the grading process (:mod:`mlgrade.gradients`): the worker
traces the function and its backward on nets of the same layers with other parameters and on
other inputs, and the grading process replays that graph with the parameters given here and the
grader's inputs; the nets kept in the worker are not used for it.
"""
from __future__ import annotations

from mlgrade import wire
from mlgrade.grading import RemoteFunction, _run, current

__all__ = ["network", "parameter_grads"]

_NETWORKS = "mlgrade.networks"  # key in GradingSession.memo: {Ref id: (layers, state)}


def network(layers: list, state: list) -> wire.Ref:
    """``nn.Sequential`` of ``layers`` ([name, *args]) with parameters ``state``, kept in the worker."""
    layers, state = [list(layer) for layer in layers], list(state)
    out = _run(None, "network", "building the grader's network", None, layers=layers, state=state)
    ref = wire.Ref(out["ref"])
    current().memo.setdefault(_NETWORKS, {})[ref.id] = (layers, [t.detach().clone() for t in state])
    return ref


def parameter_grads(fn: RemoteFunction, *args, of: tuple[int, ...]):
    """(value, [[gradient or None per parameter] per net]) of ``fn(*args)``, the nets at positions ``of``
    (Refs made by :func:`network`). Every network among ``args`` is sent as a decoy, not only those."""
    from mlgrade.gradients import gradient

    known = current().memo.get(_NETWORKS, {})
    nets = {i: known[a.id] for i, a in enumerate(args) if isinstance(a, wire.Ref) and not a.path and a.id in known}
    for position in of:
        if position not in nets:
            raise TypeError(f"parameter_grads: argument {position} is not a network made by mlgrade.networks.network")
    value, grads = gradient(fn._module, fn._path, fn.name, args, {}, nets=nets, timeout=fn._timeout, scalar=True)
    by_position, start = {}, 0
    for position in sorted(nets):
        count = len(nets[position][1])
        by_position[position] = grads[start:start + count]
        start += count
    return value, [by_position[position] for position in of]
