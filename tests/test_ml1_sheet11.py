"""ml1-sheet11: a notebook whose backprop is right and whose log_softmax divides by logsumexp over
the examples axis keeps every backprop point and loses log_softmax and the ranking, with messages
that name the mistake."""
import json
import shutil
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.results import earned
from mlgrade.runner import grade

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "reference" / "ml1-sheet11" / "sheet11.ipynb"
RIGHT = "    return Y - M - numpy.log(numpy.exp(Y - M).sum(axis=-1, keepdims=True))\n"
# the student's bug: Y / logsumexp(Y), with the logsumexp taken over the examples (axis 0)
WRONG = ["    from scipy.special import logsumexp\n",
         "    return Y / logsumexp(Y, axis=0, keepdims=True)\n"]


def notebook_with(tmp_path: Path, replace: str, lines: list[str]) -> Path:
    nb = json.loads(REFERENCE.read_text())
    for cell in nb["cells"]:
        if replace in cell["source"]:
            at = cell["source"].index(replace)
            cell["source"][at:at + 1] = lines
            break
    else:
        raise AssertionError(f"{replace!r} is not in the reference notebook")
    (tmp_path / "sheet11.ipynb").write_text(json.dumps(nb))
    return tmp_path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = notebook_with(tmp_path_factory.mktemp("divided"), RIGHT, WRONG)
    return grade(open_course(ROOT).get("ml1-sheet11"), folder).tests


def by_exercise(tests, prefix):
    found = [t for t in tests if t.name.startswith(prefix)]
    assert found, prefix
    return found


def test_backprop_keeps_full_marks(graded):
    assert all(earned(t) == t.max_score for t in by_exercise(graded, "backprop: "))


def test_log_softmax_loses_points_and_says_why(graded):
    tests = by_exercise(graded, "log_softmax: ")
    failed = {t.name: t.output for t in tests if not t.passed}
    assert set(failed) == {t.name for t in tests}  # every value, the row sums and the axis are wrong
    divided = ("it equals Y / logsumexp(Y, axis=0): log(exp(y) / s) is y - log(s), a difference, not a division; "
               "and normalise each example over its classes: logsumexp over axis 1 (the last axis, "
               "keepdims=True), not over the examples (axis 0)")
    assert divided in failed["log_softmax: same as the reference and scipy's logsumexp, N=100, C=10"]
    axis = failed["log_softmax: the class axis is the last (a row depends on its own scores only)"]
    assert "the normalisation runs over the examples" in axis and "not over the examples (axis 0)" in axis
    assert "must sum to 1 over each row's classes" in failed["log_softmax: the rows exponentiate to probabilities that sum to 1"]


def test_ranking_loses_points_and_points_at_log_softmax(graded):
    tests = [t for t in by_exercise(graded, "confidence_ranking: 24 most and least confident") if "(public)" not in t.name]
    assert not any(t.passed for t in tests)
    for t in tests:
        assert "your log_softmax(Y) does not give the log-probabilities" in t.output
        assert "fix log_softmax first" in t.output


def test_accuracy_untouched(graded):
    assert all(earned(t) == t.max_score for t in by_exercise(graded, "accuracy: "))
