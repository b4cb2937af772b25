"""Hostile cases against verdicts the worker could fake: input preservation and refusals.

Each case is staged as tests/test_hostile.py stages its corpus (``wrong_stubs.py`` first,
so every other function is wrong on purpose) and graded by :func:`mlgrade.runner.grade`
with the real ml-hw6 assignment, except that the graders are the real ``test_svm.py`` and
``test_subpixel.py`` (and the graders' conftest.py) beside tests/test_hostile.py's seven compact checks and
one ``.call`` form of assert_unchanged. Every case is graded a second
time with the attack's target disarmed (no ``refuse``) or the attack removed, to show
what the attack is worth: the points it would otherwise earn.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest

from mlgrade.course import open_course
from mlgrade.runner import grade
from conftest import REPO, relocated
from test_hostile import HOSTILE, HOSTILE_GRADERS, WRONG_STUBS

REAL_GRADERS = REPO / "graders" / "ml-hw6"
CALL_GRADER = '''"""The .call form of assert_unchanged and .grad, beside tests/test_hostile.py's compact graders."""
import torch

from mlgrade import assert_close, assert_unchanged, check, reference, student

hw6 = student("hw6")
ref = reference("hw6.py")


@check("batchnorm_forward: correct, and leaves x, gamma and beta unchanged (call)")
def test_bn_unchanged_call(rng):
    x, gamma, beta = rng.normal(size=(6, 3)), rng.normal(size=3), rng.normal(size=3)
    result = hw6.batchnorm_forward.call(x, gamma, beta)
    assert_close(result.value[0], ref.batchnorm_forward(x, gamma, beta)[0], rtol=1e-6, atol=1e-9, name="out")
    assert_unchanged(result, "batchnorm_forward", ["x", "gamma", "beta"])


@check("reparameterize: gradients reach mu and log_sigma (grad)")
def test_reparameterize_grad(seed):
    g = torch.Generator().manual_seed(seed)
    mu, log_sigma, eps, upstream = (torch.randn(4, 3, generator=g) for _ in range(4))
    z, grads = hw6.reparameterize.grad(mu, log_sigma, eps, wrt=(0, 1), grad_output=upstream)
    assert_close(z, ref.reparameterize(mu, log_sigma, eps), name="z")
    assert all(grad is not None for grad in grads), "no gradient reached mu or log_sigma"
    assert_close(list(grads), [upstream, upstream * eps * log_sigma.exp()], rtol=1e-4, atol=1e-5, name="gradients")


@check("kl_loss: gradients for mu and log_sigma (grad)")
def test_kl_grad(seed):
    g = torch.Generator().manual_seed(seed)
    mu, log_sigma = torch.randn(5, 2, generator=g), 0.5 * torch.randn(5, 2, generator=g)
    kl, grads = hw6.kl_loss.grad(mu, log_sigma, wrt=(0, 1))
    assert_close(kl, ref.kl_loss(mu, log_sigma), rtol=1e-5, atol=1e-6, name="kl")
    assert all(grad is not None for grad in grads), "no gradient reached mu or log_sigma"
    assert_close(list(grads), [mu, torch.exp(2 * log_sigma) - 1], rtol=1e-4, atol=1e-5, name="gradients")
'''
# test_svm.py: four random problems and the KKT conditions, 2 points each, and the float64 dtype
# test, 1; SVC cannot fit the n=2 problem (both points of one class), so scikit-learn is worth
# the other four and the dtype point
SVM_POINTS = 9.0
ONE_CLASS = "svm_fit: random separable data, n=2, D=2"
UNCHANGED = "batchnorm_forward modified its argument(s) x in place; the caller's arrays must stay as they were " \
            "(work on a copy)"
REFUSED_AT_RUN_TIME = "svm_fit must not use scikit-learn: found `sklearn` (imported while your code ran, in svm_fit)"
COMPACT = "subpixel_conv: random A (3, 4), K (2, 3)"  # tests/test_hostile.py's (it refuses as the real one does)
CALLED_AT_RUN_TIME = ("subpixel_conv must not use a library transposed convolution: found `conv_transpose2d` "
                      "(called while your code ran, in subpixel_conv)")


def _graders(folder, disarm_refuse: bool):
    folder.mkdir(parents=True)
    shutil.copy(REAL_GRADERS / "conftest.py", folder / "conftest.py")
    svm = (REAL_GRADERS / "test_svm.py").read_text()
    subpixel = (REAL_GRADERS / "test_subpixel.py").read_text()
    if disarm_refuse:
        assert svm.count('refuse(hw6, "svm_fit", REFUSED)') == 1
        svm = svm.replace('refuse(hw6, "svm_fit", REFUSED)', "pass")
        assert subpixel.count('refuse(hw6, "subpixel_conv", REFUSED)') == 1
        subpixel = subpixel.replace('refuse(hw6, "subpixel_conv", REFUSED)', "pass")
    (folder / "test_svm.py").write_text(svm)
    (folder / "test_subpixel.py").write_text(subpixel)
    compact = HOSTILE_GRADERS
    if disarm_refuse:  # a refusal holds for the rest of a submission's grading, whichever test made it
        compact = re.sub(r'\n    refuse\(hw6, "subpixel_conv", .*\n', "\n", compact)
        assert "refuse(hw6" not in compact
    (folder / "test_hostile_graders.py").write_text(compact)
    (folder / "test_verdict_graders.py").write_text(CALL_GRADER)
    return folder


def _assignment(tmp_path_factory, name: str, disarm_refuse: bool):
    real = open_course(REPO).get("ml-hw6")
    graders = _graders(tmp_path_factory.mktemp(name) / "ml-hw6", disarm_refuse)
    limits = dataclasses.replace(real.limits, call_timeout=30, load_timeout=30)
    return relocated(real, graders, public_checks=False, limits=limits)


@pytest.fixture(scope="module")
def armed(tmp_path_factory):
    return _assignment(tmp_path_factory, "verdict-graders", disarm_refuse=False)


@pytest.fixture(scope="module")
def disarmed(tmp_path_factory):
    return _assignment(tmp_path_factory, "verdict-graders-no-refuse", disarm_refuse=True)


def _grade(assignment, tmp_path, source: str) -> dict:
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "hw6.py").write_text(WRONG_STUBS.read_text() + "\n\n" + source)
    path = tmp_path / "results.json"
    outcome = grade(assignment, submission, str(path))
    results = json.loads(path.read_bytes())
    assert results == outcome.results
    assert "autograder itself failed" not in results["output"], outcome.log
    assert results["score"] == sum(t["score"] for t in results["tests"])
    return results


def _scores(results: dict) -> dict:
    return {t["name"]: t["score"] for t in results["tests"] if t["score"]}


def _named_outputs(results: dict, prefix: str) -> dict[str, str]:
    outs = {t["name"]: t["output"] for t in results["tests"] if t["name"].startswith(prefix)}
    assert outs, prefix
    return outs


def test_forged_digest_loses_the_unchanged_points(armed, tmp_path):
    results = _grade(armed, tmp_path, (HOSTILE / "forged_digest" / "hw6.py").read_text())
    assert _scores(results) == {"batchnorm_forward: random batch": 1.0}
    checks = {**_named_outputs(results, "batchnorm_forward: leaves"),
              **_named_outputs(results, "batchnorm_forward: correct")}
    assert len(checks) == 2 and all(UNCHANGED in out for out in checks.values()), checks


def test_forged_digest_without_the_write_earns_the_unchanged_points(armed, tmp_path):
    """The same submission with x normalised on a copy: the patches alone cost nothing, the write does."""
    source = (HOSTILE / "forged_digest" / "hw6.py").read_text()
    honest = source.replace("    x -= x.mean(axis=0)\n", "    x = x - x.mean(axis=0)\n").replace(
        "    x *= inv_std\n", "    x = x * inv_std\n")
    assert honest != source
    assert _grade(armed, tmp_path, honest)["score"] == 3.0


def test_computed_import_loses_the_svm_points(armed, tmp_path):
    results = _grade(armed, tmp_path, (HOSTILE / "computed_import" / "hw6.py").read_text())
    assert results["score"] == 0.0
    for name, out in _named_outputs(results, "svm_fit").items():
        assert REFUSED_AT_RUN_TIME in out if name != ONE_CLASS else "raised ValueError" in out


def test_computed_import_earns_the_svm_points_where_nothing_is_refused(disarmed, tmp_path):
    """What the attack is worth: scikit-learn's SVC passes the four svm_fit tests it can fit once refuse is gone."""
    results = _grade(disarmed, tmp_path, (HOSTILE / "computed_import" / "hw6.py").read_text())
    assert results["score"] == SVM_POINTS, _scores(results)


def test_an_import_at_load_time_is_refused_too(armed, tmp_path):
    source = (HOSTILE / "computed_import" / "hw6.py").read_text().replace(
        '    svm = importlib.import_module("skl" + "earn.svm")\n', "")
    source = source.replace("import numpy as np\n",
                            'import numpy as np\n\nsvm = importlib.import_module("skl" + "earn.svm")\n')
    results = _grade(armed, tmp_path, source)
    assert results["score"] == 0.0
    refused = ("svm_fit must not use scikit-learn: found `sklearn` (imported while your code ran, "
               "when hw6.py was loaded)")
    for name, out in _named_outputs(results, "svm_fit").items():
        assert refused in out if name != ONE_CLASS else "raised ValueError" in out


REPLACED_PROBES = (HOSTILE / "replaced_probes" / "hw6.py").read_text()


def test_probes_replaced_by_name_earn_nothing(armed, tmp_path):
    """call, _as_sent_back, report and grad replaced through sys.modules: the worker runs the table
    it bound before the submission loaded, so the writes are seen, the import is found, and the
    gradients are autograd's (a numpy function has none)."""
    results = _grade(armed, tmp_path, REPLACED_PROBES)
    # the honest part: batch norm's forward values and the numpy reparameterize's values
    assert _scores(results) == {"batchnorm_forward: random batch": 1.0, "reparameterize: z = mu + sigma * eps": 1.0}
    for out in {**_named_outputs(results, "batchnorm_forward: leaves"),
                **_named_outputs(results, "batchnorm_forward: correct")}.values():
        assert UNCHANGED in out
    for name, out in _named_outputs(results, "svm_fit").items():
        assert REFUSED_AT_RUN_TIME in out if name != ONE_CLASS else "raised ValueError" in out
    # the replaced grad probe is no longer consulted: the numpy function's graph is a constant
    assert GRAPH_CONSTANT in _named_outputs(results, "reparameterize: gradients")[
        "reparameterize: gradients reach mu and log_sigma (grad)"]


# what a graph of constants (values the worker computed on the decoys it was sent) gives on the grader's inputs
GRAPH_CONSTANT = "z: "
GRADIENT_TESTS = ("reparameterize: gradients reach mu and log_sigma (grad)", "kl_loss: gradients for mu and log_sigma (grad)")


def test_gradients_forged_through_the_bound_table_earn_nothing(armed, tmp_path):
    """gradient_graph replaced in the bound table (reached through gc) by a probe that answers with
    constants: the numpy value and finite differences on the decoys it was sent. The graph is
    replayed on the grader's inputs, which the worker never saw: the gradient tests earn nothing."""
    results = _grade(armed, tmp_path, (HOSTILE / "forged_gradient_table" / "hw6.py").read_text())
    assert _scores(results) == {"reparameterize: z = mu + sigma * eps": 1.0}  # the honest part: numpy values
    outputs = _named_outputs(results, "reparameterize: gradients")
    assert outputs[GRADIENT_TESTS[0]].startswith(GRAPH_CONSTANT), outputs


def test_numpy_with_finite_difference_backward_earns_only_its_values(armed, tmp_path):
    """numpy functions in an autograd.Function whose backward is finite differences: gradients flow in the
    worker, but the traced graph holds constants, and its replay on the grader's inputs is wrong."""
    results = _grade(armed, tmp_path, (HOSTILE / "numpy_finite_differences" / "hw6.py").read_text())
    assert _scores(results) == {"reparameterize: z = mu + sigma * eps": 1.0, "kl_loss: summed over every element": 1.0}
    outputs = {**_named_outputs(results, "reparameterize: gradients"), **_named_outputs(results, "kl_loss: gradients")}
    assert outputs[GRADIENT_TESTS[0]].startswith(GRAPH_CONSTANT), outputs
    # a sum over every element takes the same value on a reordering of its inputs: the gradients tell
    assert outputs[GRADIENT_TESTS[1]].startswith("gradients[0]: "), outputs


def test_importing_mlgrade_internals_is_refused_with_a_message(armed, tmp_path):
    results = _grade(armed, tmp_path, (HOSTILE / "import_internals" / "hw6.py").read_text())
    assert results["score"] == 0.0
    for t in results["tests"]:
        assert "imports `mlgrade.assignments.ml_hw6`, the autograder's own package, which submissions may not use" \
            in t["output"], t["output"]


def test_computed_refused_call_loses_the_subpixel_points(armed, tmp_path):
    """torch.nn.functional's conv_transpose2d through a reversed name: nothing imported, no name in the source."""
    results = _grade(armed, tmp_path, (HOSTILE / "computed_refused_call" / "hw6.py").read_text())
    assert results["score"] == 0.0, _scores(results)
    outputs = _named_outputs(results, "subpixel_conv")
    assert all(CALLED_AT_RUN_TIME in out for out in outputs.values()), outputs


def test_computed_refused_call_earns_the_subpixel_points_where_nothing_is_refused(disarmed, tmp_path):
    """What the attack is worth: every subpixel_conv test, the real graders' and the compact one."""
    results = _grade(disarmed, tmp_path, (HOSTILE / "computed_refused_call" / "hw6.py").read_text())
    subpixel = {t["name"]: t["max_score"] for t in results["tests"] if t["name"].startswith("subpixel_conv")}
    assert len(subpixel) == 9 and COMPACT in subpixel and _scores(results) == subpixel


MODULE_CLASS = """

def _module_class(a, k, stride):
    layer = getattr(torch.nn, "ConvT" + "ranspose2d")(1, 1, tuple(k.shape[-2:]), stride=stride, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(k)
        return layer(a)
"""
# how the attack reaches the routine, and the code it needs beside it
ENTRY_POINTS = {
    "functional form, kept at load": ("_kept(a, k, stride=int(stride))",
                                      "\n_kept = getattr(torch.nn.functional, 'd2esopsnart_vnoc'[::-1])\n"),
    "top-level alias": ("getattr(torch, 'conv_' + 'transpose2d')(a, k, stride=int(stride))", ""),
    "module class": ("_module_class(a, k, int(stride))", MODULE_CLASS),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_public_entry_point_of_a_refused_routine_is_recorded(armed, tmp_path, entry):
    reach, beside = ENTRY_POINTS[entry]
    source = (HOSTILE / "computed_refused_call" / "hw6.py").read_text()
    assert source.count("routine(a, k, stride=int(stride))") == 1
    results = _grade(armed, tmp_path, source.replace("routine(a, k, stride=int(stride))", reach) + beside)
    assert results["score"] == 0.0, _scores(results)
    outputs = _named_outputs(results, "subpixel_conv")
    for name, out in outputs.items():
        assert re.search(r"subpixel_conv must not use a library transposed convolution: found `(conv_transpose2d|"
                         r"ConvTranspose2d)` \(called while your code ran, in subpixel_conv\)", out), (name, out)
    if entry == "module class":  # the class itself is named where the grader refuses it
        assert "`ConvTranspose2d` (called while your code ran" in outputs["subpixel_conv: default stride is 2"]


@pytest.mark.parametrize("case, tests", [("forged_gradient_table", GRADIENT_TESTS[:1]),
                                         ("numpy_finite_differences", GRADIENT_TESTS)])
def test_the_faked_gradients_are_worth_their_tests_where_the_worker_sees_the_graders_inputs(
        armed, tmp_path, monkeypatch, case, tests):
    """What each attack is worth, and the proof that it ran: with decoys that are the grader's own
    tensors, its constants are right and the gradient tests pass."""
    from mlgrade import gradients

    monkeypatch.setattr(gradients, "decoy", lambda tensor: tensor.detach().clone())
    scores = _scores(_grade(armed, tmp_path, (HOSTILE / case / "hw6.py").read_text()))
    assert all(scores.get(name) == 1.0 for name in tests), scores


# -- ml2-sheet10: the gradient flip faked through the bound table ------------------------------

NO_FLIP = "    g = 2 * g.detach() - g  # the value of g; the gradient reaching gnet negated\n"


def _sheet10_notebook(folder, attack: str = ""):
    """The reference notebook with err's gradient flip removed (mutant err_no_flip), ``attack``
    appended to err's cell; the theory file beside it, as submitted."""
    import nbformat

    sheet10 = open_course(REPO).get("ml2-sheet10")
    notebook = nbformat.read(str(sheet10.reference_dir / "sheet10.ipynb"), as_version=4)
    (cell,) = [c for c in notebook.cells if NO_FLIP.strip() in c.source]
    cell.source = cell.source.replace(NO_FLIP.rstrip("\n"), "    _forge()" if attack else "    pass") + "\n\n" + attack
    folder.mkdir()
    nbformat.write(notebook, str(folder / "sheet10.ipynb"))
    shutil.copy(sheet10.reference_dir / "sheet10_theory.py", folder)
    return sheet10, folder


def test_a_flip_faked_through_the_bound_table_earns_nothing_beyond_the_missing_flip(tmp_path):
    """gradient_graph replaced (reached through gc) by a probe that sends the right loss and the right,
    flipped gradients as constants, computed by autograd on what it was sent: replayed on the grader's
    nets and inputs, which the worker never saw, they are wrong. The submission scores, test by test,
    what the same err without the flip and without the attack scores."""
    sheet10, honest = _sheet10_notebook(tmp_path / "honest")
    _, forged = _sheet10_notebook(tmp_path / "forged", (HOSTILE / "forged_flip" / "attack.py").read_text())
    scores = {}
    for name, folder in (("honest", honest), ("forged", forged)):
        outcome = grade(sheet10, folder, str(tmp_path / f"{name}.json"))
        assert "autograder itself failed" not in outcome.results["output"], outcome.log
        scores[name] = {t["name"]: t["score"] for t in outcome.results["tests"]}
    assert scores["forged"].keys() == scores["honest"].keys()
    # nothing beyond the honest part: the constants are wrong for the grader's nets, enet's gradients too
    assert all(scores["forged"][name] <= score for name, score in scores["honest"].items()), scores
    assert {name: score for name, score in scores["forged"].items() if not name.startswith("err: ")} == \
        {name: score for name, score in scores["honest"].items() if not name.startswith("err: ")}
    flip = ["err: gnet's parameter gradients are minus those of the loss without the flip",
            "err: no gradient reaches gnet's output outside the patch (m == 0)",
            "err: one SGD step of both nets equals the reference's step"]
    assert [scores["forged"][name] for name in flip] == [scores["honest"][name] for name in flip] == [0, 0, 0]


def test_the_faked_flip_is_worth_the_flip_tests_where_the_worker_sees_the_graders_inputs(tmp_path, monkeypatch):
    """What the attack is worth, and the proof that it ran: with decoys that are the grader's own
    tensors, the constants the forged probe sends are right, and the flip tests pass."""
    from mlgrade import gradients

    monkeypatch.setattr(gradients, "decoy", lambda tensor: tensor.detach().clone())
    sheet10, forged = _sheet10_notebook(tmp_path / "forged", (HOSTILE / "forged_flip" / "attack.py").read_text())
    outcome = grade(sheet10, forged, str(tmp_path / "forged.json"))
    scores = {t["name"]: t["score"] for t in outcome.results["tests"]}
    assert scores["err: gnet's parameter gradients are minus those of the loss without the flip"] == 3.0
    assert scores["err: one SGD step of both nets equals the reference's step"] == 2.0
