"""`mlgrade validate`: every assignment's graders give the reference 100%, the template 0%,
and take points from each mutant on the tests it names."""
import pytest

from mlgrade.course import open_course
from mlgrade.validate import Mutant, MutantError, apply_mutant, check_mutant, load_mutants, validate
from mlgrade.results import TestResult as Result
from mlgrade.runner import grade
from mlgrade.trivial import write_patched

ASSIGNMENTS = [a.id for a in open_course().assignments() if a.has_graders()]


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_validate(assignment_id):
    report = validate(open_course().get(assignment_id))
    failures = [f"{v.submission}: {v.score:g}/{v.max_score:g} {v.detail}" for v in report.verdicts if not v.ok]
    assert not failures, "\n".join(failures)
    mutants = [v for v in report.verdicts if v.submission.startswith("mutant ")]
    assert len(mutants) >= 3 * len(open_course().get(assignment_id).exercises)


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_mutants_apply_once_and_change_the_file(assignment_id, tmp_path):
    a = open_course().get(assignment_id)
    for mutant in load_mutants(a.mutants_dir):
        apply_mutant(mutant, a.reference_dir, tmp_path / mutant.name)
        assert (tmp_path / mutant.name / mutant.file).read_text() != (a.reference_dir / mutant.file).read_text()


def test_apply_mutant_refuses_ambiguous_text(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "hw.py").write_text("x = 1\nx = 1\n")
    mutant = Mutant("dup", "d", "hw.py", ["f: "], [{"old": "x = 1", "new": "x = 2"}])
    with pytest.raises(MutantError, match="occurs 2 times in hw.py"):
        apply_mutant(mutant, tmp_path / "ref", tmp_path / "out")


def test_check_mutant_needs_a_lost_point_per_named_prefix():
    tests = [Result("f: a", 1, passed=True), Result("f: b", 1, passed=False), Result("g: a", 1, passed=True)]
    assert check_mutant(Mutant("m", "", "x.py", ["f: "], []), tests) == (True, "")
    assert check_mutant(Mutant("m", "", "x.py", ["g: "], []), tests) == (False, "passed every 'g: ' test")
    assert check_mutant(Mutant("m", "", "x.py", ["h: "], []), tests) == (False, "no test named 'h: '")


# the numpy functions of each contract that asks for float64
FLOAT64_FUNCTIONS = {
    "ml-hw6": ["batchnorm_forward", "batchnorm_backward", "svm_fit", "forward", "backward",
               "sequence_log_likelihood", "baum_welch", "subpixel_conv"],
    "cs446-hw2": ["e_step", "m_step", "log_likelihood", "em"],
}


@pytest.mark.parametrize("assignment_id", sorted(FLOAT64_FUNCTIONS))
def test_the_reference_in_float32_fails_only_the_dtype_tests(assignment_id, tmp_path):
    """Right mathematics in single precision loses one point per function, the dtype's."""
    a = open_course().get(assignment_id)
    write_patched(a, "float32", tmp_path / "float32")
    outcome = grade(a, tmp_path / "float32")
    failed = sorted(t.name for t in outcome.tests if not t.passed)
    assert failed == sorted(f"{f}: float64 results, the contract's dtype" for f in FLOAT64_FUNCTIONS[assignment_id])
    assert outcome.results["score"] == sum(t.max_score for t in outcome.tests) - len(failed)

