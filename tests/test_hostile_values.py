"""The hostile cases of the values, loading and wire families (tests/hostile), graded end to end.

Each case is graded like those of tests/test_hostile.py (real ml-hw6 root and reference, the
compact graders, the wrong-on-purpose stubs in front of the attack) and must earn nothing,
leave a valid results.json under 1 MB, leak nothing of the reference, and tell the student
what happened. A case whose folder holds a ``LINK`` file is a symbolic link named hw6.py,
made when the case is staged (its target depends on where the repository is).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from mlgrade.runner import grade
from conftest import REPO
from test_hostile import HOSTILE, SECRETS, TIME_BOUND, WRONG_STUBS, assignment, decoy  # noqa: F401  (fixtures)

MAX_RESULTS_BYTES = 1 << 20  # what Gradescope and PrairieLearn accept
LINK = "hw6.py is a symbolic link; submit the file itself"
TOO_DEEP = "hw6.py: an expression is too long or too deeply nested to be read; split it into several statements"
CASES = {
    "truthy_answers": {
        "batchnorm_forward: random": "out: expected a float64 numpy.ndarray of shape (8, 5), got a list of bools",
        "batchnorm_backward": "(dx, dgamma, dbeta)[0]: dtype mismatch: expected float64, got bool",
        "reparameterize": "z: dtype mismatch: expected float32, got bool",
        "kl_loss": "kl: dtype mismatch: expected float32, got bool",
        "viterbi": "path: expected an int64 numpy.ndarray of shape (5,), got a list of bools",
        "subpixel_conv": "out: expected a float64 numpy.ndarray of shape (6, 9), got a list of bools",
    },
    "link_reference": {"": LINK},
    "link_proc_cwd": {"": LINK},
    "link_dev_zero": {"": LINK},
    "link_fifo": {"": LINK},
    "deep_expression": {"": TOO_DEEP},
    "huge_exception_name": {"kl_loss": "raised E", "viterbi": "raised E"},
    "huge_exception_import": {"": "hw6.py could not be loaded"},
}


def _stage(case: Path, folder: Path) -> Path:
    """The submission folder of a case: the stubs then the attack, or a link named hw6.py."""
    submission = folder / "submission"
    submission.mkdir(parents=True)
    link = case / "LINK"
    if link.is_file():
        fifo = folder / "pipe"
        os.mkfifo(fifo)
        target = link.read_text().strip().format(repo=REPO, repo_from_cwd=os.path.relpath(REPO), fifo=fifo)
        (submission / "hw6.py").symlink_to(target)
    else:
        (submission / "hw6.py").write_text(WRONG_STUBS.read_text() + "\n\n" + (case / "hw6.py").read_text())
    return submission


@pytest.mark.parametrize("name", list(CASES))
def test_case(name, assignment, tmp_path):  # noqa: F811  (the fixture imported above)
    submission = _stage(HOSTILE / name, tmp_path)
    results_path = tmp_path / "out" / "results.json"
    start = time.monotonic()
    outcome = grade(assignment, submission, str(results_path))
    assert time.monotonic() - start < TIME_BOUND

    raw = results_path.read_bytes()
    assert len(raw) < MAX_RESULTS_BYTES, len(raw)
    results = json.loads(raw)
    assert results == outcome.results
    assert len(results["tests"]) == 7 and "autograder itself failed" not in results["output"]
    outputs = {t["name"]: t["output"] for t in results["tests"]}
    assert results["score"] == 0, outputs
    everything = json.dumps(results)
    for secret in SECRETS:
        assert secret not in everything and json.dumps(secret)[1:-1] not in everything, secret
    for prefix, phrase in CASES[name].items():
        matching = [out for test, out in outputs.items() if test.startswith(prefix)]
        assert matching and all(phrase in out for out in matching), (phrase, matching)
    assert (REPO / "reference" / "ml-hw6" / "hw6.py").is_file()  # nothing followed the link to change it
    shutil.rmtree(tmp_path / "out")
