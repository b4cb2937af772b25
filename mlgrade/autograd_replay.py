"""A gradient computation the worker captured, rebuilt and replayed in the grading process.

    graph = rebuild(data, n_inputs)        # GraphRefused: an op outside ALLOWED, a forged structure
    value, grads = replay(graph, inputs)   # GraphRefused: over the budget; ReplayFailed: the op raised

The worker records the student's function and its backward as aten operations
(:mod:`mlgrade.autograd_capture`), on inputs it was sent in place of the grader's. Here that
data is checked and run again, on the grader's own inputs, with nothing from the worker but
numbers and names: each operation is looked up among ``ALLOWED`` (pure tensor arithmetic of
``torch.ops.aten``; no randomness, no I/O, no device other than the CPU, never ``eval`` or
unpickling), its arguments are earlier nodes or plain constants, and every operation's output
is sized on the meta device before it is computed, so a forged graph can cost at most
``MAX_ELEMENTS`` per tensor, ``MAX_LIVE`` at once and ``MAX_WORK`` in all. A numpy
implementation, a gradient made up by finite differences or any value read out of torch
arrives as a constant, and gives the inputs the worker saw instead of the grader's: the
comparison that follows fails. A right graph is a right answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mlgrade.autograd_capture import MAX_CONSTANT_ELEMENTS, MAX_NODES

__all__ = ["ALLOWED", "Graph", "GraphRefused", "ReplayFailed", "rebuild", "replay"]

MAX_ELEMENTS = 1 << 26  # elements of one tensor a replayed operation may make
MAX_LIVE = 1 << 28  # elements alive at once during a replay
MAX_WORK = 2 * 10 ** 11  # multiply-adds (matrix products, convolutions) and element touches of a replay

# pure tensor arithmetic: every overload of these aten packets but the out= ones
ALLOWED = frozenset("""
abs acos add addcdiv addcmul addmm addmv alias amax amin any all argmax argmin asin atan atan2 avg_pool2d
avg_pool2d_backward baddbmm bitwise_and bitwise_not bitwise_or bmm cat ceil clamp clamp_max clamp_min clone
constant_pad_nd convolution convolution_backward copy cos cosh cumprod cumsum detach diag diag_embed diagonal div
dot elu elu_backward embedding embedding_dense_backward empty_like eq erf exp exp2 expand expand_as expm1 fill
flip floor fmod full full_like gather ge gelu gelu_backward gt hardtanh hardtanh_backward index index_add
index_put index_select isinf isnan le leaky_relu leaky_relu_backward lerp lift_fresh_copy linalg_vector_norm
log log10 log1p log2 log_sigmoid_backward log_sigmoid_forward logical_and logical_not logical_or logsumexp lt
masked_fill masked_scatter max max_pool2d_with_indices max_pool2d_with_indices_backward maximum mean min minimum
mm mse_loss mse_loss_backward mul mv nan_to_num native_batch_norm native_batch_norm_backward native_layer_norm
native_layer_norm_backward ne neg new_empty new_empty_strided new_full new_ones new_zeros norm nonzero ones
ones_like permute pow prod reciprocal reflection_pad2d relu remainder repeat round rsqrt rsub scalar_tensor
scatter scatter_add select select_backward sgn sigmoid sigmoid_backward sign silu silu_backward sin sinh slice
slice_backward softplus softplus_backward sort split split_with_sizes sqrt squeeze stack sub sum t tan tanh
tanh_backward threshold threshold_backward topk transpose tril triu trunc unbind unfold unsqueeze upsample_nearest2d
var view where xlogy zeros zeros_like _log_softmax _log_softmax_backward_data _softmax _softmax_backward_data
empty empty_strided _to_copy _unsafe_index _unsafe_view _adaptive_avg_pool2d _adaptive_avg_pool2d_backward adaptive_avg_pool2d _local_scalar_dense _is_all_true _is_any_true is_nonzero _native_batch_norm_legit _native_batch_norm_legit_functional
_native_batch_norm_legit_no_training as_strided masked_select
add_ sub_ mul_ div_ neg_ copy_ zero_ fill_ clamp_ clamp_min_ relu_ masked_fill_ index_put_ addcmul_ addcdiv_
""".split())
# they allocate without writing: their memory is zeroed, so a replay never shows what it held before
UNINITIALISED = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})
RANDOM = ("rand", "randn", "randint", "randperm", "bernoulli", "normal", "uniform", "dropout", "multinomial",
          "poisson", "exponential")
# products whose work is not the size of their output: (kind of input that gives the inner size)
WORK_BY_PACKET = {"mm": 0, "addmm": 1, "bmm": 0, "baddbmm": 1, "mv": 0, "addmv": 1, "dot": 0,
                  "convolution": 1, "convolution_backward": 2}
DTYPES = {name: getattr(torch, name) for name in
          "bool uint8 int8 int16 int32 int64 float16 bfloat16 float32 float64 complex64 complex128".split()}
LAYOUTS = {"strided": torch.strided}
MEMORY_FORMATS = {name: getattr(torch, name) for name in ("contiguous_format", "preserve_format", "channels_last")}


class GraphRefused(ValueError):
    """The graph cannot be replayed here; the message says why, for the student."""


class ReplayFailed(ValueError):
    """An operation of the graph raised on the grader's inputs (shapes that do not fit, a bad index)."""


@dataclass(frozen=True)
class Node:
    op: object | None  # the aten OpOverload (or "getitem"); None for a constant
    args: tuple
    kwargs: dict
    constant: torch.Tensor | None = None


@dataclass(frozen=True)
class Graph:
    inputs: int
    nodes: tuple
    output: object  # a nest of lists, node references ("node", i) and None


def _op(name):
    if name == "getitem":
        return "getitem"
    if type(name) is not str or name.count(".") != 2 or not name.startswith("aten."):
        raise GraphRefused(f"an operation named {str(name)[:60]!r}, not one of torch.ops.aten")
    _, packet, overload = name.split(".")
    if packet not in ALLOWED:
        if any(word in packet for word in RANDOM):
            raise GraphRefused(f"it draws random numbers (torch.ops.{name}): the contract gives every random "
                               "input as an argument")
        raise GraphRefused(f"it uses torch.ops.{name}, which is not among the tensor operations the grader replays")
    packet_obj = getattr(torch.ops.aten, packet, None)
    op = getattr(packet_obj, overload, None) if overload.isidentifier() and packet_obj is not None else None
    if op is None or overload not in packet_obj.overloads():
        raise GraphRefused(f"an operation torch does not have (torch.ops.{name[:60]})")
    if any(arg.is_out for arg in op._schema.arguments):
        raise GraphRefused(f"it writes into an out= tensor (torch.ops.{name})")
    return op


def _arg(value, count: int, depth: int = 0):
    """A decoded argument: node references become ("node", i) for an earlier node i < count."""
    if depth > 4:
        raise GraphRefused("an argument nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is list:
        return [_arg(v, count, depth + 1) for v in value]
    if type(value) is dict and len(value) == 1:
        (key, inner), = value.items()
        if key == "node" and type(inner) is int and 0 <= inner < count:
            return ("node", inner)
        tables = {"dtype": DTYPES, "layout": LAYOUTS, "memory_format": MEMORY_FORMATS}
        if key in tables and inner in tables[key]:
            return tables[key][inner]
        if key == "device" and inner == "cpu":
            return torch.device("cpu")
    raise GraphRefused(f"an argument the grader does not replay ({str(value)[:60]})")


def rebuild(data, n_inputs: int) -> Graph:
    """Check the data a worker sent and make a :class:`Graph` of it, or raise :class:`GraphRefused`."""
    if not (type(data) is dict and set(data) == {"inputs", "nodes", "output"}):
        raise GraphRefused("not a graph")
    if data["inputs"] != n_inputs:
        raise GraphRefused(f"a graph of {data['inputs']} inputs, expected {n_inputs}")
    raw = data["nodes"]
    if type(raw) is not list or len(raw) > MAX_NODES:
        raise GraphRefused(f"more than {MAX_NODES} operations")
    nodes, constants = [], 0
    for i, entry in enumerate(raw):
        count = n_inputs + i
        if type(entry) is list and len(entry) == 2 and entry[0] == "constant" and isinstance(entry[1], torch.Tensor):
            constants += entry[1].numel()
            if constants > MAX_CONSTANT_ELEMENTS:
                raise GraphRefused(f"tensor constants of more than {MAX_CONSTANT_ELEMENTS} elements")
            nodes.append(Node(None, (), {}, entry[1].detach()))
        elif type(entry) is list and len(entry) == 4 and entry[0] == "call" and type(entry[2]) is list \
                and type(entry[3]) is dict:
            nodes.append(Node(_op(entry[1]), tuple(_arg(a, count) for a in entry[2]),
                              {k: _arg(v, count) for k, v in entry[3].items()}))
        else:
            raise GraphRefused(f"a malformed node (#{i})")
    return Graph(n_inputs, tuple(nodes), _arg(data["output"], n_inputs + len(nodes)))


def _last_uses(graph: Graph) -> dict[int, int]:
    last = {}

    def walk(value, at):
        if type(value) is tuple and len(value) == 2 and value[0] == "node":
            last[value[1]] = at
        elif type(value) is list:
            for v in value:
                walk(v, at)

    for i, node in enumerate(graph.nodes):
        for a in (*node.args, *node.kwargs.values()):
            walk(a, graph.inputs + i)
    walk(graph.output, math.inf)
    return last


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def _meta(value):
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.size(), value.stride(), dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_meta(v) for v in value)
    return value


def _work(op, args, outputs: list) -> int:
    """Multiply-adds of a product, else the elements it writes: what a replay may spend."""
    written = sum(t.numel() for t in outputs)
    packet = getattr(op, "_overloadpacket", None)
    position = WORK_BY_PACKET.get(getattr(packet, "__name__", ""))
    if position is None:
        return written
    inputs = [t for t in _tensors(args)]
    if not inputs or position >= len(inputs):
        return written
    inner = inputs[position]
    # a product's work: what it writes times the inner size (a row of the matrix, a filter)
    return written * max(1, inner.shape[-1] if inner.dim() < 3 else math.prod(inner.shape[1:]))


def _size(outputs: list, name: str) -> int:
    elements = sum(t.numel() for t in outputs)
    if any(t.numel() > MAX_ELEMENTS for t in outputs):
        raise GraphRefused(f"torch.ops.{name} would make a tensor of more than {MAX_ELEMENTS} elements")
    return elements


def replay(graph: Graph, inputs: list):
    """Run ``graph`` on ``inputs`` (tensors of the grading process, not modified) and return its output."""
    if len(inputs) != graph.inputs:
        raise GraphRefused(f"a graph of {graph.inputs} inputs replayed on {len(inputs)}")
    values = {i: t.detach().clone() for i, t in enumerate(inputs)}
    last = _last_uses(graph)
    live, work = sum(t.numel() for t in values.values()), 0

    def value(arg):
        if type(arg) is tuple and len(arg) == 2 and arg[0] == "node":
            return values[arg[1]]
        if type(arg) is list:
            return [value(a) for a in arg]
        return arg

    with torch.no_grad():
        for i, node in enumerate(graph.nodes, graph.inputs):
            if node.op is None:
                values[i] = node.constant.clone()
                out = [values[i]]
            else:
                args, kwargs = [value(a) for a in node.args], {k: value(v) for k, v in node.kwargs.items()}
                if node.op == "getitem":  # an item of an operation's tuple: no new tensor
                    if not (len(args) == 2 and isinstance(args[0], (list, tuple)) and type(args[1]) is int
                            and -len(args[0]) <= args[1] < len(args[0])):
                        raise GraphRefused(f"a malformed item access (#{i - graph.inputs})")
                    values[i] = args[0][args[1]]
                    continue
                name = str(node.op)
                try:
                    predicted = list(_tensors(node.op(*_meta(args), **_meta(kwargs))))
                except Exception:  # noqa: BLE001  no meta kernel (a data-dependent shape), or arguments that
                    predicted = None  # do not fit, which the real call below reports as the submission's
                if predicted is not None:
                    _size(predicted, name)
                    work += _work(node.op, args, predicted)
                    if work > MAX_WORK or live + sum(t.numel() for t in predicted) > MAX_LIVE:
                        raise GraphRefused(f"replaying it would take more than the grader's budget (at torch.ops.{name})")
                try:
                    values[i] = node.op(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001  torch's own error on the grader's inputs
                    raise ReplayFailed(f"torch.ops.{name} raised {type(exc).__name__}: {str(exc)[:300]}") from None
                out = list(_tensors(values[i]))
                if node.op._overloadpacket.__name__ in UNINITIALISED:
                    for t in out:
                        t.zero_()
                if predicted is None:
                    _size(out, name)
                    work += _work(node.op, args, out)
            live += sum(t.numel() for t in out)
            if work > MAX_WORK or live > MAX_LIVE:
                raise GraphRefused("replaying it would take more than the grader's budget")
            for arg in (*node.args, *node.kwargs.values()):
                for ref in _refs(arg):
                    if last.get(ref) == i and ref in values:
                        live -= sum(t.numel() for t in _tensors(values.pop(ref)))
        return value(graph.output)


def _refs(arg):
    if type(arg) is tuple and len(arg) == 2 and arg[0] == "node":
        yield arg[1]
    elif type(arg) is list:
        for a in arg:
            yield from _refs(a)
