"""The hostile and broken corpora (tests/hostile, tests/broken), graded end to end.

Each case is a whole submission. Hostile cases attack the grader and are otherwise wrong on
purpose, so the points they may earn are exactly those of their honest code (usually 0):
a point more means the attack worked. Broken cases are honest mistakes; what matters there
is the message the student reads.

Every case is graded once (cached per module) by :func:`mlgrade.runner.grade` with the real
ml-hw6 assignment (its root is this repository: the real reference, and the real protected
paths masked in the worker), except that the graders are a compact file of seven checks
written to a private folder, which keeps the suite fast.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.runner import grade
from mlgrade.validate import apply_mutant, load_mutant
from conftest import REPO, pids_of_uid, relocated

HOSTILE = Path(__file__).with_name("hostile")
BROKEN = Path(__file__).with_name("broken")
WRONG_STUBS = HOSTILE / "wrong_stubs.py"
TIME_BOUND = 120.0  # seconds for one grading, worst case (loops and restarts included)

GRADER_MARKER = "HIDDEN-GRADER-MARKER-q8z1"
HIDDEN_INPUT = "0.7171717171"
HOSTILE_GRADERS = f'''"""Graders of the hostile corpus ({GRADER_MARKER})."""
import numpy as np
import torch

from mlgrade import assert_close, assert_unchanged, check, fetch, reference, refuse, student

hw6 = student("hw6")
ref = reference("hw6.py")
SECRET = {HIDDEN_INPUT}  # a hidden input: must never reach a student


def batch(rng):
    return rng.normal(size=(8, 5)), rng.normal(size=5) + SECRET, rng.normal(size=5)


@check("batchnorm_forward: random batch")
def test_bn_forward(rng):
    x, gamma, beta = batch(rng)
    assert_close(fetch(hw6.batchnorm_forward.remote(x, gamma, beta)[0]), ref.batchnorm_forward(x, gamma, beta)[0],
                 rtol=1e-6, atol=1e-9, name="out")


@check("batchnorm_forward: leaves x, gamma and beta unchanged")
def test_bn_unchanged(rng):
    x, gamma, beta = batch(rng)
    kept = hw6.batchnorm_forward.remote(x, gamma, beta)
    assert_close(fetch(kept[0]), ref.batchnorm_forward(x, gamma, beta)[0], rtol=1e-6, atol=1e-9, name="out")
    assert_unchanged(kept, "batchnorm_forward", ["x", "gamma", "beta"])


@check("batchnorm_backward: gradients through its own cache")
def test_bn_backward(rng):
    x, gamma, beta = batch(rng)
    dout = rng.normal(size=x.shape)
    got = hw6.batchnorm_backward(dout, hw6.batchnorm_forward.remote(x, gamma, beta)[1])
    assert_close(got, ref.batchnorm_backward(dout, ref.batchnorm_forward(x, gamma, beta)[1]), rtol=1e-6, atol=1e-9,
                 name="(dx, dgamma, dbeta)")


@check("reparameterize: z = mu + sigma * eps")
def test_reparameterize(seed):
    g = torch.Generator().manual_seed(seed)
    mu, log_sigma, eps = (torch.randn(4, 3, generator=g) for _ in range(3))
    assert_close(hw6.reparameterize(mu, log_sigma, eps), ref.reparameterize(mu, log_sigma, eps), name="z")


@check("kl_loss: summed over every element")
def test_kl(seed):
    g = torch.Generator().manual_seed(seed)
    mu, log_sigma = torch.randn(6, 2, generator=g), 0.5 * torch.randn(6, 2, generator=g)
    assert_close(hw6.kl_loss(mu, log_sigma), ref.kl_loss(mu, log_sigma), rtol=1e-5, atol=1e-6, name="kl")


@check("viterbi: three-urn example")
def test_viterbi():
    A = np.full((3, 3), 1 / 3)
    B = np.array([[4, 2], [2, 4], [3, 3]]) / 6
    pi, O = np.full(3, 1 / 3), np.array([0, 0, 1, 0, 1])
    assert_close(hw6.viterbi(A, B, pi, O), ref.viterbi(A, B, pi, O), check_dtype="kind", name="path")


@check("subpixel_conv: random A (3, 4), K (2, 3)")
def test_subpixel(rng):
    refuse(hw6, "subpixel_conv", {{"conv_transpose2d": "a library transposed convolution"}})  # as the real grader
    A, K = rng.normal(size=(3, 4)), rng.normal(size=(2, 3))
    assert_close(hw6.subpixel_conv(A, K), ref.subpixel_conv(A, K), name="out")
'''
MAX_SCORE = 7.0
# what only the reference, the real graders and the hostile graders contain
SECRETS = [
    "Reference solution of ml-hw6",
    "Averaging y_s - w.x_s over all support vectors",
    "Compact form: dx = inv_std / N",
    "Scaled forward pass: (alpha_hat",
    "Shared inputs of the ml-hw6 graders",
    "Exercise 1: batch normalisation in training mode",
    GRADER_MARKER,
    HIDDEN_INPUT,
]


@dataclass
class Expect:
    score: float = 0.0
    phrases: dict = field(default_factory=dict)  # test name prefix -> phrase its output must contain
    everywhere: str | None = None  # a phrase every test's output must contain
    twice: bool = False  # grade twice: same score both times
    daemon: bool = False  # results.json must not change in the 3 s after grading


NOT_LOADED = "hw6.py could not be loaded"
HOSTILE_CASES = {
    "write_results": Expect(),
    "fake_stdout": Expect(phrases={"kl_loss": "Your code printed:"}),
    "sys_exit_import": Expect(everywhere=f"{NOT_LOADED}: SystemExit: 0"),
    "os_exit_import": Expect(everywhere=f"{NOT_LOADED}: the worker died: the worker exited with status 0"),
    "sys_exit_call": Expect(phrases={"kl_loss": "called sys.exit(0) instead of returning a value"}),
    "os_exit_call": Expect(phrases={"kl_loss": "stopped the worker: the worker exited with status 0"}),
    "atexit_results": Expect(phrases={"kl_loss": "called sys.exit(0) instead of returning a value"}),
    "daemon": Expect(daemon=True),
    "conftest_ini": Expect(),
    "numpy_shadow": Expect(),
    "monkeypatch": Expect(twice=True),
    "read_reference": Expect(),
    "search_reference": Expect(),
    "steal_memory": Expect(),
    "lying_eq": Expect(phrases={"kl_loss": "the returned value is an object of type hw6.Liar; only numbers",
                                "batchnorm_backward": "the returned value is an object of type hw6.Liar"},
                       twice=True),
    "ndarray_subclass": Expect(phrases={"viterbi": "the returned value is a subclass of numpy.ndarray (hw6.Always)",
                                        "batchnorm_backward": "the returned value[0] is a subclass of numpy.ndarray"}),
    "tensor_subclass": Expect(phrases={"kl_loss": "the returned value is a subclass of torch.Tensor (hw6.Always)"}),
    "pickle_payload": Expect(phrases={"kl_loss": "the returned value is an object of type hw6.Payload",
                                      "reparameterize": "the returned value is an object of type bytes",
                                      "viterbi": "the returned value[0] is an object of type hw6.Payload"}),
    "loop_call": Expect(phrases={"viterbi": "did not finish within 4 s (wall clock); the worker was stopped"}),
    "loop_import": Expect(everywhere=f"{NOT_LOADED}: the worker died: did not finish within 20 s (wall clock)"),
    "memory_bomb": Expect(phrases={"kl_loss": "stopped the worker: the worker was killed by SIGKILL (killed: memory limit"}),
    "fork_bomb": Expect(twice=True),
    "huge_output": Expect(phrases={"kl_loss": "(output truncated)"}),
    "input_mutation": Expect(score=2.0, phrases={
        "batchnorm_forward: leaves": "batchnorm_forward modified its argument(s) x in place"}, twice=True),
    "reseed": Expect(twice=True),
    "network": Expect(),
    "write_graders": Expect(),
    "escape_sequences": Expect(phrases={"kl_loss": "raised-in-call", "viterbi": "raised-in-viterbi"}),
    "computed_refused_call": Expect(phrases={"subpixel_conv": (
        "subpixel_conv must not use a library transposed convolution: found `conv_transpose2d` (called while your "
        "code ran, in subpixel_conv)")}),
    "annotation_call": Expect(phrases={"batchnorm_forward": "hw6.ipynb does not define `batchnorm_forward`"}),
}
BROKEN_CASES = {
    "syntax_py": Expect(everywhere="hw6.py, line 3: SyntaxError: expected ':'"),
    "syntax_ipynb": Expect(everywhere="hw6.ipynb, cell 3, line 2: SyntaxError: invalid syntax"),
    "missing_function": Expect(score=6.0, phrases={"kl_loss": "hw6.py does not define `kl_loss`"}),
    "wrong_signature": Expect(score=4.0, phrases={
        "batchnorm_forward: random": "raised TypeError: batchnorm_forward() takes 2 positional arguments but 3 were given"}),
    "nan_output": Expect(score=6.0, phrases={"reparameterize": "z: NaN where a number was expected\nMismatched elements: 12 / 12 (100%)"}),
    "wrong_shape": Expect(score=5.0, phrases={
        "batchnorm_forward: random": "out: shape mismatch: expected (8, 5), got (5, 8) (the transpose of the expected shape)"}),
    "wrong_dtype": Expect(score=6.0, phrases={"kl_loss": "kl: dtype mismatch: expected float32, got float64"}),
    "numpy_for_torch": Expect(score=6.0, phrases={"reparameterize": "z: expected a torch.Tensor, got a numpy.ndarray"}),
    "empty": Expect(everywhere="hw6.py was not submitted"),
    # the sheet's import solution line is not run; the name taken from it is failed by name
    "import_solution": Expect(phrases={"batchnorm_forward": (
        "batchnorm_forward still calls `solution.batchnorm_forward` (hw6.ipynb, cell 3, line 2), the course's "
        "reference solution, which is not available to submissions: replace it by your own implementation")}),
}


DECOY = Path("/srv/mlgrade-decoy")  # read_reference globs for it


@pytest.fixture(scope="module")
def decoy(worker_uid):
    """A world-readable copy of the reference outside the project, as a second checkout would be.

    Masking the project's own folders is not enough: the worker must see no such file at all.
    """
    if worker_uid is None:
        yield None  # not root: the worker is us, and file permissions are all there is
        return
    shutil.rmtree(DECOY, ignore_errors=True)
    shutil.copytree(REPO / "reference", DECOY / "reference")
    for path in [DECOY, *DECOY.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield DECOY
    shutil.rmtree(DECOY, ignore_errors=True)


@pytest.fixture(scope="module")
def assignment(tmp_path_factory, worker_uid, decoy):
    real = open_course(REPO).get("ml-hw6")
    graders = tmp_path_factory.mktemp("hostile-graders") / "ml-hw6"
    graders.mkdir()
    (graders / "test_hostile_graders.py").write_text(HOSTILE_GRADERS)
    limits = dataclasses.replace(real.limits, call_timeout=4, load_timeout=20)
    # ml-hw6 as shipped (course, reference, protected paths), with the compact graders
    return relocated(real, graders, public_checks=False, limits=limits)


@dataclass
class Graded:
    results: dict
    raw: bytes
    seconds: float
    survivors: list
    log: str
    folder: Path
    later: bytes | None = None
    second_score: float | None = None


def _planted(folder: Path) -> list[Path]:
    """Files of ``folder`` that the write_graders case would have created or appended to."""
    return [p for p in folder.rglob("*.py") if "pwned" in p.name or "def test_pwned" in p.read_text(errors="replace")]


_cache: dict[str, Graded] = {}


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return f"{pid}: " + fh.read().replace(b"\0", b" ").decode(errors="replace")[:300]
    except OSError:
        return f"{pid}: (gone)"


def _grade(assignment, worker_uid, tmp_path_factory, source: Path, expect: Expect) -> Graded:
    key = str(source)
    if key in _cache:
        return _cache[key]
    folder = tmp_path_factory.mktemp(source.name)
    patch = source.with_suffix(".toml")
    if patch.is_file():  # an honest mistake written as a patch of the reference
        apply_mutant(load_mutant(patch), REPO / "reference" / "ml-hw6", folder / "submission")
    else:
        shutil.copytree(source, folder / "submission")
        attack = folder / "submission" / "hw6.py"
        if source.parent == HOSTILE and attack.is_file():  # the wrong-on-purpose functions, then the attack
            attack.write_text(WRONG_STUBS.read_text() + "\n\n" + attack.read_text())
    results_path = folder / "out" / "results.json"
    start = time.monotonic()
    outcome = grade(assignment, folder / "submission", str(results_path))
    seconds = time.monotonic() - start
    survivors = pids_of_uid(worker_uid) if worker_uid is not None else []
    graded = Graded(outcome.results, results_path.read_bytes(), seconds, survivors, outcome.log, folder / "submission")
    if expect.daemon:
        time.sleep(3)
        graded.later = results_path.read_bytes()
    if expect.twice:
        graded.second_score = grade(assignment, folder / "submission", str(folder / "again.json")).results["score"]
        graded.survivors += pids_of_uid(worker_uid) if worker_uid is not None else []
    graded.survivors = [_cmdline(pid) for pid in graded.survivors]
    _cache[key] = graded
    return graded


ALL = [(HOSTILE / name, e) for name, e in HOSTILE_CASES.items()] + [(BROKEN / name, e) for name, e in BROKEN_CASES.items()]


@pytest.mark.parametrize("source,expect", ALL, ids=[f"{p.parent.name}/{p.name}" for p, _ in ALL])
def test_case(source, expect, assignment, worker_uid, tmp_path_factory):
    graded = _grade(assignment, worker_uid, tmp_path_factory, source, expect)
    results = json.loads(graded.raw)

    # completed in time, valid Gradescope results
    assert graded.seconds < TIME_BOUND, graded.seconds
    assert results == graded.results
    assert set(results) >= {"score", "tests", "output"}
    assert len(results["tests"]) == 7
    for t in results["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output"}
        assert t["status"] in ("passed", "failed")
        assert 0 <= t["score"] <= t["max_score"] == 1.0
    assert results["score"] == sum(t["score"] for t in results["tests"])
    assert "autograder itself failed" not in results["output"], graded.log

    # exactly the honest code's points
    outputs = {t["name"]: t["output"] for t in results["tests"]}
    assert results["score"] == expect.score, outputs

    # nothing hidden leaked
    everything = json.dumps(results)
    for secret in SECRETS:
        assert secret not in everything and json.dumps(secret)[1:-1] not in everything, secret

    # no process of the worker user survives, results.json stays as written
    assert graded.survivors == []
    if expect.daemon:
        assert graded.later == graded.raw
    if expect.twice:
        assert graded.second_score == results["score"]

    # the student is told what happened
    for prefix, phrase in expect.phrases.items():
        matching = [out for name, out in outputs.items() if name.startswith(prefix)]
        assert matching and all(phrase in out for out in matching), (phrase, matching)
    if expect.everywhere:
        for name, out in outputs.items():
            assert expect.everywhere in out, (name, out)

    # the repository and the submission's side files are untouched
    for folder in (REPO / "graders", REPO / "reference", REPO / "mlgrade", assignment.graders_dir):
        assert _planted(folder) == []
    assert not (graded.folder / "CONFTEST_WAS_IMPORTED").exists()
    assert not (graded.folder / "NUMPY_SHADOW_WAS_IMPORTED").exists()
    assert not Path("/tmp/mlgrade-pwned-by-pickle").exists()
    assert "FAKE NUMPY IMPORTED" not in everything and "SUBMITTED CONFTEST IMPORTED" not in everything
