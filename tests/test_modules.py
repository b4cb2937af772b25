"""mlgrade.modules: a submitted torch module against a reference, by registration order and shape."""
from __future__ import annotations

import re
import textwrap

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mlgrade import Mismatch, SubmissionError, compare_module, module_state, randomized, run_module, student, \
    transplanted  # noqa: E402
from mlgrade.grading import GradingSession, attach, detach, per_submission  # noqa: E402
from mlgrade.loading import load_file  # noqa: E402
from mlgrade.sandbox import Limits, Sandbox  # noqa: E402

SUBMISSION = textwrap.dedent('''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Good(nn.Module):          # the reference's layers under other names
        def __init__(self, c, bias=False):
            super().__init__()
            self.first = nn.Conv2d(1, c, 3, padding=1, bias=bias)
            self.norm_a = nn.BatchNorm2d(c)
            self.norm_b = nn.BatchNorm2d(c)
            self.head = nn.Linear(c, 3)

        def forward(self, x):
            x = F.relu(self.norm_a(self.first(x)))
            return self.head(self.norm_b(x).mean(dim=(2, 3)))

    class WithBias(Good):
        def __init__(self, c):
            super().__init__(c, bias=True)

    class Shared(Good):
        def __init__(self, c):
            super().__init__(c)
            self.norm_b = self.norm_a

    class Aliased(Good):            # the same layers listed again in a container: aliases, not new layers
        def __init__(self, c):
            super().__init__(c)
            self.f = nn.Sequential(self.first, self.norm_a, nn.ReLU())

        def forward(self, x):
            return self.head(self.norm_b(self.f(x)).mean(dim=(2, 3)))

    class SharedInForward(Good):    # both layers registered, one of them applied at both places
        def forward(self, x):
            x = F.relu(self.norm_a(self.first(x)))
            return self.head(self.norm_a(x).mean(dim=(2, 3)))

    class Shadow(Good):             # reports the contract's layers, computes with a copy of its own
        def __init__(self, c):
            super().__init__(c)
            import copy
            object.__setattr__(self, "shadow", copy.deepcopy(Good(c)))

        def state_dict(self, *args, **kwargs):
            return self.shadow.state_dict(*args, **kwargs)

        def forward(self, x):
            return self.shadow(x)

    class BatchStatsInEval(Good):   # right in train mode only
        def forward(self, x):
            a = self.norm_a
            x = F.batch_norm(self.first(x), a.running_mean, a.running_var, a.weight, a.bias, True, 0.1, a.eps)
            return self.head(self.norm_b(F.relu(x)).mean(dim=(2, 3)))

    class Detached(Good):
        def forward(self, x):
            return super().forward(x).detach()

    class GradientsThroughNumpy(Good):  # right gradients in the worker, taken out of torch on the way back
        def forward(self, x):
            class Through(torch.autograd.Function):
                @staticmethod
                def forward(ctx, y):
                    return y.view_as(y)

                @staticmethod
                def backward(ctx, g):
                    return torch.as_tensor(g.detach().numpy().copy())

            return Through.apply(super().forward(x))

    class OnGpu(Good):
        def forward(self, x):
            return super().forward(x.cuda())

    class NotAModule:
        def __init__(self, c):
            self.c = c
''')


class Reference(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.bn2 = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv(x)))
        return self.fc(self.bn2(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def net(tmp_path_factory, pytestconfig):
    folder = tmp_path_factory.mktemp("submission")
    (folder / "net.py").write_text(SUBMISSION)
    module = load_file(folder, ["net.py"])
    session = GradingSession(None, {module.name: module}, Sandbox([module.spec()], Limits(call_timeout=60)))
    token = attach(pytestconfig, session)  # this test run grades the submission, as a grading's run does
    try:
        yield student("net")
    finally:
        session.close()
        detach(pytestconfig, token)


@pytest.fixture
def reference():
    torch.manual_seed(0)
    return randomized(Reference(4), seed=1)


@pytest.fixture
def x():
    return torch.randn(6, 1, 5, 5, generator=torch.Generator().manual_seed(2))


def test_same_module_under_other_names_passes_every_check(net, reference, x):
    got = compare_module(net.Good, reference, x, 4)
    assert got.names[:2] == ["first.weight", "norm_a.weight"]
    # state_dict order: each BatchNorm's parameters, then its buffers
    assert got.kinds[:6] == ["parameter", "parameter", "parameter", "buffer", "buffer", "buffer"]
    assert got.n_parameters == sum(p.numel() for p in reference.parameters())
    assert got.grads[0] is not None and got.grads[3] is None


def test_a_conv_bias_fails_with_both_architectures(net, reference, x):
    with pytest.raises(SubmissionError) as info:
        compare_module(net.WithBias, reference, x, 4, checks=("architecture",))
    message = str(info.value)
    assert "Expected 13: conv.weight (4, 1, 3, 3) [Conv2d], bn1.weight (4,) [BatchNorm2d]" in message
    assert "Your module has 14: first.weight (4, 1, 3, 3) [Conv2d], first.bias (4,) [Conv2d]" in message
    assert "First difference at entry 2" in message
    assert "bias=False" in message


def test_a_layer_used_twice_is_named(net, reference, x):
    with pytest.raises(SubmissionError) as info:
        compare_module(net.Shared, reference, x, 4)
    message = str(info.value)
    assert "Expected 13:" in message and "Your module has 8:" in message
    assert ("A layer created once and used at two places of forward is one layer: the contract has a separate "
            "layer at each place.") in message
    assert "in the order in which forward uses them" not in message
    # the same mismatch met again in this submission: one line, pointing at the first report
    with pytest.raises(SubmissionError) as again:
        compare_module(net.Shared, reference, x, 4)
    assert str(again.value) == ("Shared(4): cannot run: its parameters and buffers differ from the contract's "
                                "(listed in full in the first failing test of this module)")


def test_aliases_in_a_sequential_are_the_same_layers(net, reference, x):
    """Torch counts a module reachable under two names once; so does the transplant."""
    got = compare_module(net.Aliased, reference, x, 4)
    assert got.names == compare_module(net.Good, reference, x, 4).names
    assert got.n_parameters == sum(p.numel() for p in reference.parameters())


def test_a_shared_layer_with_every_layer_registered_is_caught_by_behaviour(net, reference, x):
    with pytest.raises(Mismatch, match="output"):
        compare_module(net.SharedInForward, reference, x, 4, checks=("output",))


def test_an_overridden_state_dict_neither_routes_the_transplant_nor_earns_the_output(net, reference, x):
    """The listing comes from torch.nn.Module's own methods, and forward is judged on the transplanted weights."""
    with pytest.raises(Mismatch, match="output"):
        compare_module(net.Shadow, reference, x, 4, checks=("output",))


def test_eval_mode_differences_show_only_in_eval(net, reference, x):
    compare_module(net.BatchStatsInEval, reference, x, 4, checks=("output", "gradients", "input_gradient"))
    with pytest.raises(Mismatch, match=r"output \(eval mode"):
        compare_module(net.BatchStatsInEval, reference, x, 4, checks=("eval",))


def test_missing_gradients_are_reported(net, reference, x):
    compare_module(net.Detached, reference, x, 4, checks=("output",))
    with pytest.raises(SubmissionError, match="no gradient reached `first.weight`"):
        compare_module(net.Detached, reference, x, 4, checks=("gradients",))


def test_gradients_are_those_of_the_graph_replayed_on_the_graders_tensors(net, reference, x):
    """A backward that leaves torch gives the right numbers in the worker (which sees decoys of the
    state, x and the upstream gradient) and constants in the graph: judged here, they are wrong."""
    compare_module(net.GradientsThroughNumpy, reference, x, 4, checks=("output",))
    with pytest.raises(Mismatch, match=re.escape("gradient of `first.weight` (train mode)")):
        compare_module(net.GradientsThroughNumpy, reference, x, 4, checks=("gradients",))
    with pytest.raises(Mismatch, match=re.escape("gradient of the input x (train mode)")):
        compare_module(net.GradientsThroughNumpy, reference, x, 4, checks=("input_gradient",))


def test_cuda_without_gpu_says_why(net, reference, x):
    with pytest.raises(SubmissionError) as info:
        compare_module(net.OnGpu, reference, x, 4)
    assert "The grader has no GPU" in str(info.value)
    assert "device of the input" in str(info.value)


def test_not_a_module(net, reference, x):
    with pytest.raises(SubmissionError) as info:
        run_module(net.NotAModule, 4)
    # the student reads what was wrong with the object, not the name of the probe's exception
    assert str(info.value).endswith("made a NotAModule, not a torch.nn.Module"), str(info.value)
    assert "ProbeError" not in str(info.value)


def test_transplanted_module_stays_in_the_worker(net, reference):
    ref = transplanted(net.Good, reference, 4)
    state = module_state(ref)
    for got, want in zip(state.state, reference.state_dict().values()):
        assert torch.equal(got, want)
    assert state.training is True


def test_randomized_changes_only_constant_entries():
    torch.manual_seed(0)
    module = Reference(3)
    changed = randomized(module, seed=5)
    assert torch.equal(changed.conv.weight, module.conv.weight)
    assert not torch.equal(changed.bn1.weight, module.bn1.weight)
    assert (changed.bn1.running_var > 0).all()
    assert not torch.equal(changed.bn1.bias, changed.bn2.bias)


def test_runs_are_computed_once_per_submission(net, reference, x):
    calls = []

    @per_submission
    def expensive(n):
        calls.append(n)
        return n * 2

    assert expensive(3) == expensive(3) == 6 and calls == [3]
    first = compare_module(net.Good, reference, x, 4, checks=("output",))
    assert compare_module(net.Good, reference, x, 4, checks=("eval",)) is first
