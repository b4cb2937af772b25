"""The trusted probes (mlgrade.probes) on a stand-in worker: they send values back, never a verdict."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch

from mlgrade import probes, refusals, wire

SOURCE = """
def normalise(x, scale=1.0):
    x -= x.mean()
    return float(scale)


def grow(items):
    items.append(object())
    return len(items)


def scale_(t):
    t.mul_(2)
    return None


def add(a, b):
    return a + b
"""


@pytest.fixture
def worker():
    module = types.ModuleType("m")
    exec(SOURCE, module.__dict__)
    return types.SimpleNamespace(modules={"m": module}, load_errors={}, objects={})


def call(worker, target, **kwargs):
    """probes.call's reply as the grading process receives it (the worker encodes it once, whole)."""
    return wire.decode(wire.encode(probes.call(worker, target, **kwargs)))


def test_a_call_sends_back_the_argument_objects_as_they_are_after_it(worker):
    x = np.arange(4.0)
    reply = call(worker, ["m", "normalise"], args=[x], kwargs={"scale": 2.0}, send_back=[0, "scale"])
    assert reply["value"] == 2.0
    (key, ok, value), rest = reply["args"]
    assert (key, ok) == (0, True)  # and x as the call left it:
    np.testing.assert_array_equal(value, [-1.5, -0.5, 0.5, 1.5])
    assert rest == ["scale", True, 2.0]


def test_a_tensor_modified_in_place_comes_back_modified(worker):
    t = torch.ones(3)
    reply = call(worker, ["m", "scale_"], args=[t], send_back=[0])
    assert torch.equal(reply["args"][0][2], torch.full((3,), 2.0))


def test_an_argument_that_can_no_longer_travel_comes_back_as_not_ok(worker):
    reply = call(worker, ["m", "grow"], args=[[1, 2]], send_back=[0])
    assert reply == {"value": 3, "args": [[0, False, None]]}


def test_a_call_reports_no_verdict_of_its_own(worker):
    assert call(worker, ["m", "add"], args=[2, 3]) == {"value": 5}
    assert call(worker, ["m", "add"], args=[2, 3], keep=True) == {"value": {"ref": 1, "type": "int"}}
    assert not hasattr(probes, "_digest")


def test_a_call_reports_the_recorded_imports_of_the_names_asked(worker, monkeypatch):
    monkeypatch.setattr(refusals, "_first", {"sklearn.svm": "svm_fit", "sklearn": "svm_fit", "sklearnish": "f",
                                             "scipy.optimize": refusals.LOAD})
    reply = call(worker, ["m", "add"], args=[1, 2], refused=["sklearn", "scipy", "torch"])
    assert reply == {"value": 3, "imports": [["sklearn", "svm_fit"], ["scipy", refusals.LOAD]], "calls": []}


CALLS_REFUSED = """
import torch
import torch.nn.functional as F

kept = getattr(F, "uler"[::-1])  # taken at load: called later through the module's own global


def by_name(x):
    return getattr(torch.nn.functional, "uler"[::-1])(x)


def by_alias(x):
    return getattr(torch, "relu")(x)


def by_global(x):
    return kept(x)


def by_class(x):
    return getattr(torch.nn, "ReL" + "U")()(x)


def honest(x):
    return x.clamp(min=0)
"""


@pytest.mark.parametrize("function, called", [
    ("by_name", [["relu", "by_name"]]), ("by_alias", [["relu", "by_alias"]]), ("by_global", [["relu", "by_global"]]),
    ("by_class", [["ReLU", "by_class"], ["relu", "by_class"]]), ("honest", []),
])
def test_a_call_reports_the_refused_routines_it_called_through_any_public_entry_point(monkeypatch, function, called):
    monkeypatch.setattr(refusals, "_called", {})
    module = types.ModuleType("m")
    exec(CALLS_REFUSED, module.__dict__)
    worker = types.SimpleNamespace(modules={"m": module}, load_errors={}, objects={})
    originals = (torch.nn.functional.relu, torch.relu, torch.nn.ReLU.forward, torch.nn.ReLU.__init__, module.kept)
    reply = call(worker, ["m", function], args=[torch.tensor([-1.0, 2.0])], refused=["relu", "ReLU"])
    assert torch.equal(reply["value"], torch.tensor([0.0, 2.0]))
    assert reply["calls"] == called
    # everything put back: outside a call with refusals, nothing is watched
    assert (torch.nn.functional.relu, torch.relu, torch.nn.ReLU.forward, torch.nn.ReLU.__init__, module.kept) == \
        originals
    before = dict(refusals._called)
    assert "calls" not in call(worker, ["m", function], args=[torch.tensor([1.0])])
    assert refusals._called == before


LOADED = textwrap.dedent("""
    import importlib
    importlib.import_module("pkg_" + "load")

    def f():
        importlib.import_module("pkg_" + "call.sub")
        return 1

    def g():
        return getattr(importlib.import_module("pkg_" + "other"), "VALUE")
""")
DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import pkg_before
    from mlgrade import probes
    from mlgrade.worker import Worker

    worker = Worker(probes.bind())
    assert worker.load([{"name": "m", "file": "m.py", "chunks": [["m.py", sys.argv[2]]]}]) == {"m": None}
    names = ["pkg_load", "pkg_call", "pkg_other", "pkg_before"]
    first = probes.call(worker, ["m", "f"], refused=names)["imports"]
    probes.call(worker, ["m", "g"])
    import pkg_outside
    second = probes.call(worker, ["m", "f"], refused=names + ["pkg_outside"])["imports"]
    print(json.dumps([first, second]))
""")


def test_worker_load_records_imports_from_the_first_line_of_student_code(tmp_path):
    """The real audit hook, in a process of its own (a hook cannot be removed)."""
    for name in ("pkg_load", "pkg_other", "pkg_before", "pkg_outside"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    (tmp_path / "pkg_call").mkdir()
    (tmp_path / "pkg_call" / "__init__.py").write_text("")
    (tmp_path / "pkg_call" / "sub.py").write_text("")
    out = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path), LOADED], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    first, second = json.loads(out)
    assert first == [["pkg_load", refusals.LOAD], ["pkg_call", "f"]]
    # imports before the submission loaded are not recorded; those between calls are, as such
    assert second == [["pkg_load", refusals.LOAD], ["pkg_call", "f"], ["pkg_other", "g"],
                      ["pkg_outside", refusals.OUTSIDE]]


# -- the probe table: an explicit registry, bound before student code ------------------------

def test_the_probe_table_is_explicit_and_holds_the_engine_probes():
    from mlgrade import probes

    table = probes.bind()
    assert {"call", "gradient_graph", "module_gradient_graph", "signature", "fetch", "module_check", "module_state_of",
            "set_globals"} <= set(table)
    assert not {"grad", "parameter_grads"} & set(table)  # gradients are judged in the grading process
    assert "lookup" not in table and "_keep" not in table and "bind" not in table  # helpers are not probes
    with pytest.raises(TypeError):
        table["call"] = None  # read-only


@pytest.mark.parametrize("fn, message", [
    (lambda worker: 1, "'<lambda>': a probe's name must be an identifier"),
    (len, "len: a probe must be a plain function, got builtin_function_or_method"),
])
def test_register_names_the_culprit_first(fn, message):
    from mlgrade import probes

    with pytest.raises(probes.RegistrationError, match=re.escape(message)):
        probes.register(fn)


def test_register_refuses_a_probe_without_worker_and_a_second_probe_of_a_name():
    from mlgrade import probes

    def no_worker(x):
        return x

    with pytest.raises(probes.RegistrationError, match=re.escape("no_worker: a probe's first parameter must be `worker`")):
        probes.register(no_worker)

    def call(worker):
        return None

    with pytest.raises(probes.RegistrationError, match=re.escape("call: a probe of that name is registered already")):
        probes.register(call)


def test_a_bound_table_ignores_later_replacements_of_probes_and_their_helpers(monkeypatch):
    """What a submission that loads after the bind does to mlgrade.probes reaches nothing the worker runs."""
    from mlgrade import probes
    from mlgrade.worker import Worker

    table = probes.bind()
    worker = Worker(table)
    assert worker.load([{"name": "m", "file": "m.py", "chunks": [["m.py", "def f(x):\n    x[0] = 9\n    return 1\n"]]}]) \
        == {"m": None}
    monkeypatch.setattr(probes, "call", lambda worker, **kw: {"value": "forged"})
    monkeypatch.setattr(probes, "_as_sent_back", lambda key, value: [key, True, "forged copy"])
    monkeypatch.setattr(probes, "report", lambda names: [])
    monkeypatch.setattr(probes, "lookup", lambda worker, target: (lambda *a: "forged"))
    reply = worker.handle({"op": "probe", "probe": "call", "kwargs": {"target": ["m", "f"], "args": [[1, 2]],
                                                                       "send_back": [0]}})
    assert reply["value"].value == 1
    assert reply["args"][0].first == [0, True, [9, 2]]  # the list as the call left it
    with pytest.raises(ValueError, match="unknown probe 'lookup'"):
        worker.handle({"op": "probe", "probe": "lookup", "kwargs": {}})


ALIKE = textwrap.dedent("""
    import importlib, json, sys
    import pytest
    import mlgrade.cli, mlgrade.runner, mlgrade.results
    import mlgrade
    mlgrade.student  # a public name imported lazily, as a grader does
    from mlgrade import worker
    sys.argv[:] = sys.argv[:1] + ["run", "ml-hw6", "submission", "--results", "out.json"]
    worker.alike()
    try:
        importlib.import_module("mlgrade.course")
        refused = None
    except ImportError as exc:
        refused = str(exc)
    print(json.dumps({"argv": sys.argv, "refused": refused, "main": sorted(vars(sys.modules["__main__"])),
                      "modules": sorted(m for m in sys.modules if m.startswith(("mlgrade", "pytest", "_pytest"))),
                      "package": sorted(n for n in vars(mlgrade) if not n.startswith("__"))}))
""")


def test_a_worker_sees_the_same_interpreter_whatever_started_the_grading():
    """argv, __main__ and the grading process's modules (check and run differ there) are gone before student code."""
    out = json.loads(subprocess.run([sys.executable, "-c", ALIKE], capture_output=True, text=True, check=True,
                                    timeout=120).stdout)
    assert out["argv"] == ["-m", "mlgrade.worker"]
    assert out["main"] == ["__doc__", "__loader__", "__name__", "__package__", "__spec__"]
    assert set(out["modules"]) <= {"mlgrade", "mlgrade.worker", "mlgrade.worker_errors", "mlgrade.probes",
                                   "mlgrade.wire", "mlgrade.refusals", "mlgrade.channel",
                                   "mlgrade.autograd_capture"}
    assert "student" not in out["package"] and "runner" not in out["package"] and "cli" not in out["package"]
    assert out["refused"] == ("a submission may not import mlgrade.course: mlgrade is the autograder, "
                              "not a library for your code")


def test_grader_built_objects_come_from_the_bound_table_whatever_the_submission_replaces(monkeypatch):
    """ml1-sheet11's classifier and ml2-sheet10's networks: replacing their probes, or the class a
    classifier used to be an instance of, after the bind changes neither."""
    from mlgrade import probes
    from mlgrade.worker import Worker

    worker = Worker(probes.bind())
    monkeypatch.setattr(probes, "network", lambda worker, layers, state: probes._keep(worker, torch.nn.Identity()))
    monkeypatch.setattr(probes, "linear_scores", lambda worker, weights: probes._keep(worker, None))
    monkeypatch.setattr(probes, "_linear_scores_class", lambda: type("Liar", (), {"__init__": lambda s, w: None,
                                                                               "predict": lambda s, X: 0}))
    weights = np.arange(6.0).reshape(3, 2)
    clf = worker.objects[worker.handle({"op": "probe", "probe": "linear_scores", "kwargs": {"weights": weights}})["ref"]]
    X = np.ones((4, 3))
    assert np.array_equal(clf.predict(X), X @ weights)
    state = [torch.ones(2, 3), torch.zeros(2)]
    net = worker.objects[worker.handle({"op": "probe", "probe": "network",
                                        "kwargs": {"layers": [["Linear", 3, 2]], "state": state}})["ref"]]
    assert isinstance(net, torch.nn.Sequential) and torch.equal(net(torch.ones(1, 3)), torch.full((1, 2), 3.0))
