"""`mlgrade validate`: every assignment's graders give the reference 100%, the template 0%,
and take points from each mutant on the tests it names."""
import os
import re

import pytest

from mlgrade.course import open_course
from mlgrade.validate import Mutant, MutantError, apply_mutant, check_mutant, load_mutants, validate
from mlgrade.results import TestResult as Result
from mlgrade.runner import grade
from mlgrade.trivial import write_patched

ASSIGNMENTS = [a.id for a in open_course().assignments() if a.has_graders()]


@pytest.mark.mutants
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_validate(assignment_id):
    report = validate(open_course().get(assignment_id), jobs=os.cpu_count() or 1)
    failures = [f"{v.submission}: {v.score:g}/{v.max_score:g} {v.detail}" for v in report.verdicts if not v.ok]
    assert not failures, "\n".join(failures)
    mutants = [v for v in report.verdicts if v.submission.startswith("mutant ")]
    assert len(mutants) >= 3 * len(open_course().get(assignment_id).exercises)


def test_validate_over_the_pool_reports_what_one_process_does():
    """-j 2 grades in two pool processes (their own worker users and fork servers) and reports
    the same verdicts, in the same order, and the same catches as one process does."""
    a = open_course().get("ml-hw6")
    one, pooled = (validate(a, only="vae_", jobs=jobs) for jobs in (1, 2))
    assert len(one.verdicts) == 1 + 2 + 6 and one.ok  # dependencies, two alternatives, six mutants
    assert [(v.submission, v.ok, v.score, v.detail) for v in pooled.verdicts] == \
        [(v.submission, v.ok, v.score, v.detail) for v in one.verdicts]
    assert pooled.catches == one.catches and any(one.catches.values())


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



def test_a_fake_must_earn_nothing_on_every_test_it_names():
    tests = [Result("f: a", 1, passed=False), Result("f: b", 1, passed=True)]
    fake = Mutant("fake", "", "x.py", ["f: "], [], earns_nothing=True)
    assert check_mutant(fake, tests) == (False, "earned points on 'f: b'")
    assert check_mutant(fake, tests[:1]) == (True, "")


def test_value_tests_catching_no_mutant_of_their_function_are_flagged():
    from mlgrade.validate import powerless_tests

    mutants = [Mutant("m1", "", "x.py", ["f: a"], []), Mutant("m2", "", "x.py", ["g: "], []),
               Mutant("fake", "", "x.py", ["h: "], [], earns_nothing=True)]
    catches = {"f: a": ["m1"], "f: b": ["m2"]}
    names = ["f: a", "f: b", "f: float64 results, the contract's dtype", "g: x", "h: y", "k: z"]
    # f: b catches only another function's mutant; g: x none; h (only a fake) and k have no mutant to catch
    assert powerless_tests(mutants, catches, names) == ["f: b", "g: x"]


def test_alternatives_are_mutants_without_must_fail(tmp_path):
    from mlgrade.validate import load_mutant

    (tmp_path / "alt.toml").write_text('description = "d"\nfile = "x.py"\n[[replace]]\nold = "a"\nnew = "b"\n')
    alternative = load_mutant(tmp_path / "alt.toml", alternative=True)
    assert (alternative.must_fail, alternative.replace) == ([], [{"old": "a", "new": "b"}])
    with pytest.raises(MutantError, match=re.escape("alt.toml: missing ['must_fail']")):
        load_mutant(tmp_path / "alt.toml")
