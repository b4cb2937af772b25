"""Trusted probes: the small pieces of grading logic that must run beside student code.

Each probe runs in the worker (see :mod:`mlgrade.worker`) as ``probe(worker, **kwargs)``
and returns plain data; the grading process makes every verdict from that data. Probes
never judge: they call, list and transplant; the gradient probes (:mod:`mlgrade.autograd_capture`)
trace a computation and its backward, on decoys, into a graph the grading process replays. Student code shares their
process and can replace any of them, so a probe never reports a conclusion about the
student's code (a digest, a flag): it sends back the values themselves, which the grading
process compares with what it holds.

The worker finds probes in an explicit table, never by ``getattr`` on this module: each
probe enters it through :func:`register` (the one door, which checks what it is given), and
the worker takes :func:`bind` before the submission's first line runs. ``bind`` copies every
probe over a snapshot of its module's names, so a submission that later replaces
``mlgrade.probes.call`` or a helper it uses (``_as_sent_back``, ``report``) changes nothing the
worker runs. That is cheap, not a boundary (ctypes reaches any memory): the boundary is that
the grading process judges the data that comes back.
"""
from __future__ import annotations

import inspect
import keyword
import types

from mlgrade import wire
from mlgrade.refusals import during, report, report_calls, watching
from mlgrade.worker_errors import ErrorKind

__all__ = ["ProbeError", "RegistrationError", "bind", "register"]

_TABLE: dict[str, types.FunctionType] = {}


class RegistrationError(ValueError):
    """A probe that cannot enter the table; the message names it first."""


def register(fn=None, *, name: str | None = None):
    """Add ``fn`` to the probes the worker may run, under ``name`` (default: its own name).

    Used as a decorator. A probe is a plain function whose first parameter is ``worker``.
    Only the engine's probes are registered today (a course cannot yet ship its own: a file of
    the course is not readable in the confined worker, so it would have to travel as source).
    """
    def add(fn):
        key = name or getattr(fn, "__name__", "")
        if not (isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)):
            raise RegistrationError(f"{key!r}: a probe's name must be an identifier")
        if not isinstance(fn, types.FunctionType):
            raise RegistrationError(f"{key}: a probe must be a plain function, got {type(fn).__name__}")
        params = list(inspect.signature(fn).parameters)
        if not params or params[0] != "worker":
            raise RegistrationError(f"{key}: a probe's first parameter must be `worker`, got {params[:1]}")
        if key in _TABLE and _TABLE[key] is not fn:
            raise RegistrationError(f"{key}: a probe of that name is registered already "
                                    f"({_TABLE[key].__module__}.{_TABLE[key].__qualname__})")
        _TABLE[key] = fn
        return fn

    return add(fn) if fn is not None else add


def _detached(fn: types.FunctionType, names: dict) -> types.FunctionType:
    copy = types.FunctionType(fn.__code__, names, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def bind() -> types.MappingProxyType:
    """The probe table as it is now, for the worker to keep before student code runs.

    Every probe, and every function of its module that it reaches by name, is copied over a
    private snapshot of that module's globals: later assignments to the module's names
    (``probes.network = ...``) do not reach the copies.
    """
    snapshots: dict[int, dict] = {}

    def snapshot(module_globals: dict) -> dict:
        key = id(module_globals)
        if key not in snapshots:
            names = snapshots[key] = dict(module_globals)
            for attr, value in list(names.items()):
                if isinstance(value, types.FunctionType) and value.__globals__ is module_globals:
                    names[attr] = _detached(value, names)
        return snapshots[key]

    return types.MappingProxyType({key: _detached(fn, snapshot(fn.__globals__)) for key, fn in _TABLE.items()})


class ProbeError(Exception):
    """A condition a probe reports by kind, e.g. a name the submission does not define."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = ErrorKind(kind)


def lookup(worker, target):
    module_name, *attrs = target
    if module_name in worker.load_errors:
        raise ProbeError(ErrorKind.LOAD, "module failed to load")
    obj = worker.modules[module_name]
    for attr in attrs:
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ProbeError(ErrorKind.MISSING, f"{module_name} has no attribute `{attr}`") from None
    return obj


def _keep(worker, value) -> dict:
    ref_id = len(worker.objects) + 1
    worker.objects[ref_id] = value
    return {"ref": ref_id, "type": type(value).__name__}


def _as_sent_back(key, value) -> wire.Either:
    """[key, True, value] if ``value`` can travel, else [key, False, None] (it was replaced by something that cannot)."""
    return wire.Either([key, True, value], [key, False, None])


@register
def call(worker, target, args=(), kwargs=None, keep=False, send_back=(), refused=()):
    """Call ``target(*args, **kwargs)``.

    ``send_back`` lists the arguments (positions, keyword names) whose objects, as they are
    after the call, go back with the value: the grading process compares them with what it
    sent (see :func:`mlgrade.grading.assert_unchanged`). ``refused`` lists the refused names:
    the recorded imports of those that are modules and the calls of those that are routines
    (watched during this call; see :mod:`mlgrade.refusals`) go back too. Nothing is judged here.
    """
    kwargs = kwargs or {}
    fn = lookup(worker, target)
    if not callable(fn):
        raise ProbeError(ErrorKind.MISSING, f"{'.'.join(target)} is not callable")
    with during(".".join(target[1:])), watching(refused, worker.modules.values()):
        value = fn(*args, **kwargs)
    # encoded once, with the reply: a value that cannot travel is named as the returned value
    reply = {"value": _keep(worker, value) if keep else wire.Named(value, "the returned value")}
    if send_back:
        reply["args"] = [_as_sent_back(key, args[key] if type(key) is int else kwargs[key]) for key in send_back]
    if refused:
        reply["imports"] = report(refused)
        reply["calls"] = report_calls(refused)
    return reply


@register
def signature(worker, target):
    """The parameter names and kinds of a callable, as strings."""
    fn = lookup(worker, target)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, p.default is not inspect.Parameter.empty] for p in sig.parameters.values()]


@register
def fetch(worker, ref):
    """The value behind a :class:`~mlgrade.wire.Ref` (already resolved by the decoder)."""
    return ref


# -- modules: construct, describe, transplant, run in train and eval mode ---------------


def module_state(module) -> list:
    """[name, tensor, kind, owner class] per parameter and buffer of ``module``, as torch sees them.

    The order is ``state_dict``'s, the registration order: submodules in the order they were
    assigned in ``__init__``, and within each one its parameters, then its buffers (so a
    BatchNorm's running statistics sit next to its weight and bias). A tensor reachable under
    two names (a layer also listed in an ``nn.Sequential``) is one entry, under its first name,
    as ``named_parameters`` and ``parameters`` count it: names are the student's choice. A layer
    used at two places of forward is one layer, and shows as an entry too few. ``torch.nn.Module``'s
    own methods list it, whatever the student's class overrides.
    """
    import torch

    base = torch.nn.Module
    owners = {name: type(m).__name__ for name, m in base.named_modules(module, remove_duplicate=False)}
    params = {id(p) for p in base.parameters(module)}
    entries, seen = [], set()
    for name, tensor in base.state_dict(module, keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        owner = owners.get(name.rpartition(".")[0], type(module).__name__)
        entries.append([name, tensor, "parameter" if id(tensor) in params else "buffer", owner])
    return entries


def _describe_module(module) -> dict:
    import torch

    entries = module_state(module)
    return {
        "names": [e[0] for e in entries],
        "shapes": [list(e[1].shape) for e in entries],
        "kinds": [e[2] for e in entries],
        "owners": [e[3] for e in entries],
        "aliases": list(range(len(entries))),  # one entry per tensor (kept for older readers of the reply)
        "n_parameters": int(sum(p.numel() for p in torch.nn.Module.parameters(module))),
        "type": type(module).__name__,
    }


def exercise_module(module, x, grad_output=None, eval_x=None, eval_grad_output=None, seed=0) -> dict:
    """Run ``module`` once in train mode (forward and backward) and once in eval mode.

    Used on the student's module in the worker and on the reference in the grading
    process, so both sides go through the same steps: train-mode output, the gradient of
    ``sum(output * grad_output)`` for every state entry (None for buffers and where no
    gradient reached) and for ``x``, the state after the train step (running statistics),
    then the eval-mode output on ``eval_x`` (default ``x``) and its input gradient.
    Without ``grad_output`` the upstream gradient is drawn from ``seed + 1`` with the
    output's shape, so both sides use the same one whatever shape the output has.
    """
    import torch

    def run(inp, upstream):
        leaf = inp.detach().clone().requires_grad_(inp.is_floating_point())
        torch.manual_seed(seed)
        out = module(leaf)
        wire.encode(out, path="the returned value")
        if not isinstance(out, torch.Tensor):
            return out, None
        if upstream is None and out.is_floating_point():  # the same seeded draw on both sides
            upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=out.dtype)
        if upstream is not None and out.requires_grad and tuple(out.shape) == tuple(upstream.shape):
            out.backward(upstream.to(out.dtype))
        return out.detach(), leaf.grad

    entries = module_state(module)
    for _, tensor, kind, _ in entries:
        if kind == "parameter":
            tensor.grad = None
    module.train()
    out, x_grad = run(x, grad_output)
    result = {
        "train_output": out,
        "input_grad": x_grad,
        "grads": [t.grad.detach().clone() if kind == "parameter" and t.grad is not None else None
                  for _, t, kind, _ in entries],
        "state_after_train": [t.detach().clone() for _, t, _, _ in entries],
    }
    module.eval()
    eval_x = x if eval_x is None else eval_x
    out, x_grad = run(eval_x, grad_output if eval_grad_output is None and eval_x is x else eval_grad_output)
    result.update(eval_output=out, eval_input_grad=x_grad)
    return result


def transplant(module, state) -> None:
    """Copy ``state`` (tensors in :func:`module_state` order, shapes already checked) into ``module``."""
    import torch

    with torch.no_grad():
        for (_, tensor, _, _), value in zip(module_state(module), state):
            tensor.copy_(value.to(tensor.dtype))


@register
def module_check(worker, target, args=(), kwargs=None, state=None, x=None, grad_output=None,
                 eval_x=None, eval_grad_output=None, seed=0, dtype=None, keep=False):
    """Construct ``target(*args, **kwargs)`` (a torch module class) and describe its state.

    When ``state`` is given and matches the module's entries in count and shapes, it is
    transplanted; then, when ``x`` is given, the module is exercised (see
    :func:`exercise_module`). ``dtype`` ("float64") converts the module first;
    ``keep`` keeps the module in the worker and returns a Ref to it under "ref".
    """
    import torch

    kwargs = kwargs or {}
    cls = lookup(worker, target)
    if not callable(cls):
        raise ProbeError(ErrorKind.MISSING, f"{'.'.join(target)} is not callable")
    torch.manual_seed(seed)
    with during(".".join(target[1:])):
        module = cls(*args, **kwargs)
    if not isinstance(module, torch.nn.Module):
        raise ProbeError(ErrorKind.TYPE, f"{'.'.join(target)}(...) made a {type(module).__name__}, not a torch.nn.Module")
    info = _describe_module(module)
    if state is not None:
        if len(state) != len(info["shapes"]) or any(list(s.shape) != shape for s, shape in zip(state, info["shapes"])):
            return info
        transplant(module, state)
    if dtype is not None:
        module.to(getattr(torch, dtype))
    if keep:
        info["ref"] = _keep(worker, module)
    if x is not None:
        with during(".".join(target[1:])):
            info.update(exercise_module(module, x, grad_output, eval_x, eval_grad_output, seed))
    return info


@register
def module_state_of(worker, module):
    """The state tensors of a module kept in the worker (a resolved Ref), in state_dict order."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ProbeError(ErrorKind.TYPE, f"expected a torch.nn.Module, got {type(module).__name__}")
    return {**_describe_module(module), "state": [t.detach() for _, t, _, _ in module_state(module)],
            "training": bool(module.training)}


# -- notebook state: globals a submitted function reads, objects the grader controls ----------


@register
def set_globals(worker, target, values):
    """Assign ``values`` ({name: value}) as globals of the submitted module ``target[0]``.

    For a notebook function that reads state a cell created (``W``, ``B``, ``V``): the
    grader chooses that state before each call, as the notebook's own cell would have.
    """
    module = lookup(worker, target[:1])
    for name, value in values.items():
        setattr(module, name, value)


# -- probes for objects a grader builds in the worker (a linear classifier, networks of plain torch
# -- layers): registered like any other ------------------------------------------------------


def _linear_scores_class():
    """A class of its own per classifier, made inside the bound probe: nothing a submission can
    reach by name (``mlgrade.probes.LinearScores``) changes the classifier it receives."""
    import numpy

    class LinearScores:
        """A classifier the grader controls: ``predict(X)`` is ``X`` flattened per example times ``weights``."""

        def __init__(self, weights):
            self.weights = numpy.asarray(weights, dtype=numpy.float64)

        def predict(self, X):
            X = numpy.asarray(X, dtype=numpy.float64)
            return X.reshape(len(X), -1) @ self.weights

    return LinearScores


@register
def linear_scores(worker, weights):
    """Keep a LinearScores classifier in the worker, so that no student object is ever constructed
    by, or returned to, the grader; returns its Ref record."""
    return _keep(worker, _linear_scores_class()(weights))


# -- networks the grader builds: plain torch layers with the grader's parameters ------------

NETWORK_LAYERS = ("Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus", "ELU", "Identity")


@register
def network(worker, layers, state):
    """Keep ``nn.Sequential`` of ``layers`` ([name, *args], names of NETWORK_LAYERS) in the worker,
    its parameters set to ``state`` (tensors in ``parameters()`` order); returns its Ref record."""
    return _keep(worker, sequential(layers, state))


def sequential(layers, state):
    """``nn.Sequential`` of ``layers``, its parameters set to ``state``."""
    import torch

    modules = []
    for name, *args in layers:
        if name not in NETWORK_LAYERS:
            raise ProbeError(ErrorKind.LAYER, f"layer {name!r} is not one of {', '.join(NETWORK_LAYERS)}")
        modules.append(getattr(torch.nn, name)(*args))
    net = torch.nn.Sequential(*modules)
    params = list(net.parameters())
    if len(params) != len(state) or any(p.shape != s.shape for p, s in zip(params, state)):
        raise ProbeError(ErrorKind.STATE, "the parameters sent do not fit the layers")
    with torch.no_grad():
        for p, s in zip(params, state):
            p.copy_(s)
    return net


from mlgrade import autograd_capture  # noqa: E402,F401  registers the gradient probes beside these
