"""Comparing a submitted torch module with a reference module, whatever the attribute names.

    net = compare_module(hw2.ResNet, ref.ResNet(4), x, 4, checks=("eval",))

The student's class is constructed in the worker (``torch.manual_seed(seed)`` first). Its
parameters and buffers are listed in ``state_dict`` order, which is the registration order
(submodules in the order ``__init__`` assigns them; in each, parameters then buffers),
and the reference's state is transplanted into it entry by entry, matching shapes, so the
student's attribute names are free. A different count or shape, or a layer used twice
(one tensor under two names), fails with both architectures listed. Then both modules run
the same steps (:func:`mlgrade.probes.exercise_module`): a train-mode forward and backward
(outputs, parameter and input gradients, running statistics after the step) and an
eval-mode forward. Only tensors and lists come back from the worker. The gradients that are
compared do not come from that run: the worker traces the train-mode step and its backward on
decoys of the reference's state, ``x`` and the upstream gradient, and the grading process
replays that graph on the real ones (:func:`judged_gradients`, :mod:`mlgrade.gradients`).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
from dataclasses import dataclass, field

from mlgrade import probes, wire
from mlgrade.compare import assert_close
from mlgrade.grading import RemoteFunction, SubmissionError, _describe_call, _run, current

__all__ = ["ModuleRun", "CHECKS", "compare_module", "judged_gradients", "module_state", "one_thread", "randomized",
           "replayed_step", "run_module",
           "transplanted"]

CHECKS = ("architecture", "output", "gradients", "input_gradient", "buffers", "eval")
RUN_FIELDS = ("train_output", "input_grad", "grads", "state_after_train", "eval_output", "eval_input_grad")


@dataclass
class ModuleRun:
    """What one module reported: its architecture, and what it computed when it was run."""

    type: str
    names: list
    shapes: list
    kinds: list
    owners: list
    aliases: list
    n_parameters: int
    ref: wire.Ref | None = None
    train_output: object = None
    input_grad: object = None
    grads: list = field(default_factory=list)
    state_after_train: list = field(default_factory=list)
    eval_output: object = None
    eval_input_grad: object = None
    state: list = field(default_factory=list)
    training: bool | None = None

    @classmethod
    def from_reply(cls, info: dict) -> "ModuleRun":
        ref = info.get("ref")
        run = cls(type=str(info["type"]), names=list(info["names"]), shapes=[tuple(s) for s in info["shapes"]],
                  kinds=list(info["kinds"]), owners=list(info["owners"]), aliases=list(info["aliases"]),
                  n_parameters=int(info["n_parameters"]),
                  ref=wire.Ref(ref["ref"]) if isinstance(ref, dict) else None,
                  state=list(info.get("state") or []), training=info.get("training"))
        for name in RUN_FIELDS:
            if name in info:
                setattr(run, name, info[name])
        return run

    def listing(self) -> str:
        """``name (shape) [Layer]`` per entry, in registration order."""
        return ", ".join(f"{n} {_shape(s)} [{o}]" for n, s, o in zip(self.names, self.shapes, self.owners))


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def describe_local(module) -> ModuleRun:
    """The :class:`ModuleRun` description of a module of the grading process (the reference)."""
    info = probes._describe_module(module)
    return ModuleRun.from_reply(info)


def _bias_count(run: ModuleRun) -> int:
    """Biases of convolution-like layers (the entry after an ``X.weight`` of 3+ dimensions)."""
    count = 0
    for i, name in enumerate(run.names[1:], 1):
        prev = run.names[i - 1]
        if name.endswith("bias") and prev.endswith("weight") and len(run.shapes[i - 1]) >= 3 \
                and prev[:-6] == name[:-4]:
            count += 1
    return count


def architecture_message(student: ModuleRun, expected: ModuleRun, call: str) -> str | None:
    """Why the student's state cannot take the reference's, or None when it can."""
    if len(student.shapes) == len(expected.shapes) and all(a == b for a, b in zip(student.shapes, expected.shapes)):
        return None
    lines = [f"{call}: the parameters and buffers (in registration order) differ from the contract's, "
             "so the reference's weights cannot be copied into your module.",
             f"Expected {len(expected.names)}: {expected.listing()}",
             f"Your module has {len(student.names)}: {student.listing()}"]
    for i, (a, b) in enumerate(zip(student.shapes, expected.shapes)):
        if a != b or "?" not in (student.owners[i], expected.owners[i]) and student.owners[i] != expected.owners[i]:
            lines.append(f"First difference at entry {i + 1}: expected {expected.names[i]} {_shape(b)} "
                         f"[{expected.owners[i]}], got {student.names[i]} {_shape(a)} [{student.owners[i]}].")
            break
    else:
        longer = student if len(student.names) > len(expected.names) else expected
        k = min(len(student.names), len(expected.names))
        what = "has extra entries from" if longer is student else "misses the entries from"
        lines.append(f"Your module {what} {expected.names[k] if longer is expected else student.names[k]} on.")
    extra = _bias_count(student) - _bias_count(expected)
    if extra > 0:
        lines.append(f"Your module has {extra} convolution bias(es) the contract does not have: "
                     "create those convolutions with bias=False.")
    elif len(student.names) < len(expected.names):
        lines.append("A layer created once and used at two places of forward is one layer: the contract has a "
                     "separate layer at each place.")
    if len(student.names) == len(expected.names):
        lines.append("Create the layers in __init__ in the order in which forward uses them.")
    return "\n".join(lines)


def _call(cls: RemoteFunction, args, kwargs, x=None) -> str:
    call = _describe_call(cls.name, args, kwargs)
    return f"{call} applied to {wire.describe(x)}" if x is not None else call


def run_module(cls: RemoteFunction, *args, state=None, x=None, grad_output=None, eval_x=None, eval_grad_output=None,
               seed: int = 0, dtype: str | None = None, keep: bool = False, expected: ModuleRun | None = None,
               **kwargs) -> ModuleRun:
    """Construct ``cls(*args, **kwargs)`` in the worker, transplant ``state``, run it on ``x``.

    ``state``: tensors in registration order (``expected`` describes them for the error
    message; without it the listing shows shapes only). A module whose entries do not
    match fails with :class:`SubmissionError` listing both architectures.
    """
    if not isinstance(cls, RemoteFunction):
        raise TypeError("run_module needs the submission's class, e.g. student('hw2_ResNet').Block")
    call = _call(cls, args, kwargs, x)
    request = dict(args=list(args), kwargs=kwargs, state=state, x=x, grad_output=grad_output, eval_x=eval_x,
                   eval_grad_output=eval_grad_output, seed=seed, dtype=dtype, keep=keep)
    key = None if keep else ("run_module", cls.name, _digest(request))
    memo = current().memo
    if key in memo:
        run = memo[key]
    else:
        run = ModuleRun.from_reply(cls._probe("module_check", call, **request))
        if key:
            memo[key] = run
    if state is not None:
        if expected is None:
            n = len(state)
            expected = ModuleRun("expected", [f"entry {i + 1}" for i in range(n)], [tuple(t.shape) for t in state],
                                 ["?"] * n, ["?"] * n, list(range(n)), 0)
        call = _describe_call(cls.name, args, kwargs)
        message = architecture_message(run, expected, call)
        if message:
            raise SubmissionError(_once(memo, ("architecture reported", call, message), message, call))
    return run


def _once(memo: dict, key, message: str, call: str) -> str:
    """The full structural message on the first test that meets it; one line on the tests after it."""
    if key in memo:
        return (f"{call}: cannot run: its parameters and buffers differ from the contract's "
                "(listed in full in the first failing test of this module)")
    memo[key] = True
    return message


def randomized(module, seed: int = 0):
    """A copy of ``module`` whose constant entries (BatchNorm's weight 1, bias 0, running
    statistics) get random values of the same sign, so that swapped, shared or skipped
    layers change the output. Entries already random are kept."""
    import torch

    module = copy.deepcopy(module)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, tensor, _, _ in probes.module_state(module):
            if not tensor.is_floating_point() or tensor.numel() == 0:
                continue
            first = tensor.reshape(-1)[0]
            if not bool((tensor == first).all()):
                continue
            noise = torch.rand(tensor.shape, generator=g, dtype=tensor.dtype)
            if float(first) > 0:
                tensor.copy_(first * (0.5 + noise))
            else:
                tensor.copy_(first + 0.6 * (noise - 0.5))
    return module


def _state(module) -> list:
    return [t.detach().clone() for _, t, _, _ in probes.module_state(module)]


def _digest(value) -> str:
    return hashlib.sha256(wire.encode(value)).hexdigest()


def reference_run(reference, x=None, grad_output=None, eval_x=None, eval_grad_output=None, seed=0,
                  dtype: str | None = None) -> ModuleRun:
    """The same steps as the worker's, on a copy of the (trusted) reference module (once per submission)."""
    key = ("reference_run", type(reference).__module__, type(reference).__qualname__,
           _digest([_state(reference), x, grad_output, eval_x, eval_grad_output, seed, dtype]))
    memo = current().memo
    if key not in memo:
        memo[key] = _reference_run(reference, x, grad_output, eval_x, eval_grad_output, seed, dtype)
    return memo[key]


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread, as the worker does: the same results, and on shared cores
    (graders run beside other jobs) several threads are often many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _reference_run(reference, x, grad_output, eval_x, eval_grad_output, seed, dtype) -> ModuleRun:
    import torch

    module = copy.deepcopy(reference)
    if dtype is not None:
        module.to(getattr(torch, dtype))
    run = describe_local(module)
    if x is not None:
        with one_thread():
            steps = probes.exercise_module(module, x, grad_output, eval_x, eval_grad_output, seed)
        for name, value in steps.items():
            setattr(run, name, value)
    return run


def _close(actual, expected, what: str, rtol: float, atol: float) -> None:
    """assert_close with ``atol`` relative to the size of the expected values (float32 round-off)."""
    import torch

    if isinstance(expected, torch.Tensor) and expected.numel() and expected.is_floating_point():
        atol = atol * max(1.0, float(expected.detach().abs().max()))
    assert_close(actual, expected, rtol=rtol, atol=atol, name=what)


def compare_module(cls: RemoteFunction, reference, x, *args, checks=CHECKS, grad_output=None, eval_x=None,
                   seed: int = 0, dtype: str | None = None, rtol: float = 1e-4, atol: float = 1e-5,
                   **kwargs) -> ModuleRun:
    """Check the submitted module class ``cls`` against the reference module instance.

    ``cls(*args, **kwargs)`` is built in the worker and given the reference's parameters
    and buffers; both run on ``x`` (train mode: forward, backward of
    ``sum(output * grad_output)``, with ``grad_output`` drawn from ``seed + 1`` by default;
    then eval mode). ``checks`` picks what is compared, in this order: "architecture"
    (always), "output" (train mode), "gradients" (every parameter), "input_gradient",
    "buffers" (state after the train step, e.g. running statistics), "eval" (eval-mode
    output, which uses those statistics). Returns the student's run.
    """
    import torch

    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)} (known: {CHECKS})")
    expected = reference_run(reference, x, grad_output, eval_x, None, seed, dtype)
    call = _call(cls, args, kwargs, x)
    got = run_module(cls, *args, state=_state(reference), x=x, grad_output=grad_output, eval_x=eval_x, seed=seed,
                     dtype=dtype, expected=expected, **kwargs)
    if "output" in checks or "gradients" in checks or "input_gradient" in checks:
        _close(got.train_output, expected.train_output, "output (train mode)", rtol, atol)
    if "gradients" in checks or "input_gradient" in checks:
        grads, input_grad = judged_gradients(cls, args, kwargs, _state(reference), expected, x, grad_output, seed, dtype)
    if "gradients" in checks:
        for name, want, have, mine in zip(expected.names, expected.grads, grads, got.names):
            if want is None:
                continue
            if have is None:
                raise SubmissionError(f"{call}: no gradient reached `{mine}` (expected that of {name}): keep the "
                                      "computation in torch and use every layer in forward")
            _close(have, want, f"gradient of `{mine}` (train mode)", rtol, atol)
    if "input_gradient" in checks:
        if input_grad is None and expected.input_grad is not None:
            raise SubmissionError(f"{call}: no gradient reached the input x (no .detach(), .numpy() or no_grad in forward)")
        _close(input_grad, expected.input_grad, "gradient of the input x (train mode)", rtol, atol)
    if "buffers" in checks:
        for i, (name, kind) in enumerate(zip(expected.names, expected.kinds)):
            if kind == "buffer":
                _close(got.state_after_train[i], expected.state_after_train[i],
                       f"`{got.names[i]}` after one forward pass in train mode", rtol, atol)
    if "eval" in checks:
        _close(got.eval_output, expected.eval_output, "output (eval mode, after one train-mode forward pass "
               "updated the running statistics)", rtol, atol)
    return got


def judged_gradients(cls: RemoteFunction, args, kwargs, state: list, expected: ModuleRun, x, grad_output, seed: int,
                     dtype: str | None = None) -> tuple[list, object]:
    """The gradients of a train-mode step of ``cls(*args, **kwargs)`` holding ``state``, computed here.

    Returns ([gradient or None per entry of ``expected``], gradient of x or None), as
    :func:`probes.exercise_module` does; see :func:`replayed_step`.
    """
    import torch

    if grad_output is None:  # the seeded draw of exercise_module, with the reference's output shape
        out = expected.train_output
        grad_output = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=out.dtype)
    wrt = [i for i, kind in enumerate(expected.kinds) if kind == "parameter"]
    _, grads = replayed_step(cls, *args, state=state, x=x, grad_output=grad_output, wrt=wrt, seed=seed, dtype=dtype,
                             **kwargs)
    entry_grads = [None] * len(state)
    for i, grad in zip(wrt, grads):
        entry_grads[i] = grad
    return entry_grads, grads[-1]


def replayed_step(cls: RemoteFunction, *args, state: list, x, grad_output, wrt=(), seed: int = 0, mode: str = "train",
                  dtype: str | None = None, **kwargs) -> tuple[object, list]:
    """(output, [gradient or None per state entry in ``wrt``, then of x]) of one step of ``cls(*args,
    **kwargs)`` holding ``state`` (tensors in registration order) on ``x`` in ``mode``, computed here.

    The worker traces the step and its backward (of ``sum(output * grad_output)``) on decoys of
    ``state``, ``x`` and ``grad_output`` (:mod:`mlgrade.gradients`); the graph is replayed on the
    real ones, so no gradient the worker computed is used.
    """
    import torch

    from mlgrade.gradients import decoy, replayed

    if dtype is not None:
        state = [t.to(getattr(torch, dtype)) if t.is_floating_point() else t for t in state]
        x = x.to(getattr(torch, dtype))
    real, wrt = [*state, x, grad_output], list(wrt)
    key = ("module_gradient_graph", cls.name, mode, _digest([list(args), kwargs, real, wrt, seed]))
    memo = current().memo
    if key not in memo:
        call = _call(cls, args, kwargs, x)
        reply = cls._probe("module_gradient_graph", call, args=list(args), kwargs=kwargs,
                           state=[decoy(t) for t in state], x=decoy(x), grad_output=decoy(grad_output), wrt=wrt,
                           seed=seed, mode=mode)
        out, grads = replayed(reply, real, call)
        if grads is None:
            grads = [None] * (len(wrt) + 1)
        if not (isinstance(grads, list) and len(grads) == len(wrt) + 1):
            raise SubmissionError(f"{call}: its graph gives another number of gradients")
        memo[key] = out, grads
    return memo[key]


def transplanted(cls: RemoteFunction, reference, *args, seed: int = 0, **kwargs) -> wire.Ref:
    """A ``cls(*args, **kwargs)`` kept in the worker, holding the reference's parameters and buffers.

    Pass the returned Ref to a submitted function (e.g. a training loop), then read the
    module back with :func:`module_state`.
    """
    run = run_module(cls, *args, state=_state(reference), seed=seed, keep=True,
                     expected=describe_local(reference), **kwargs)
    return run.ref


def module_state(ref: wire.Ref) -> ModuleRun:
    """Architecture and current state (``.state``, ``.training``) of a module kept in the worker."""
    return ModuleRun.from_reply(_run(None, "module_state_of", "reading back a module kept in the worker", None, module=ref))
