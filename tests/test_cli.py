"""The command line as instructors and students use it."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mlgrade(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mlgrade.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_run_reference_scores_full_marks_and_writes_results(tmp_path):
    results = tmp_path / "out" / "results.json"
    proc = mlgrade("run", "ml-hw6", str(ROOT / "reference" / "ml-hw6"), "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(results.read_text())
    assert data["score"] == sum(t["max_score"] for t in data["tests"]) > 0
    assert all(t["status"] == "passed" for t in data["tests"])
    assert "Score:" in proc.stdout


def test_run_exits_zero_for_a_broken_submission(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hw6.py").write_text("def batchnorm_forward(x, gamma, beta, eps=1e-5)\n    pass\n")
    results = tmp_path / "results.json"
    proc = mlgrade("run", "ml-hw6", str(tmp_path / "sub"), "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(results.read_text())
    assert data["score"] == 0
    assert {t["output"] for t in data["tests"]} == {"hw6.py, line 1: SyntaxError: expected ':'"}


def test_check_works_from_a_copy_of_the_template_alone(tmp_path):
    shutil.copy(ROOT / "student_template" / "ml-hw6" / "hw6.ipynb", tmp_path / "hw6.ipynb")
    proc = mlgrade("check", "ml-hw6", "--course", str(ROOT), cwd=tmp_path)
    assert proc.returncode == 1  # public checks fail on the blank template
    assert "public checks" in proc.stdout
    assert "is not implemented yet" in proc.stdout
    assert not (tmp_path / "results.json").exists()


def test_check_passes_on_a_correct_notebook(tmp_path):
    shutil.copy(ROOT / "examples" / "ml-hw6" / "alice" / "hw6.ipynb", tmp_path / "hw6.ipynb")
    proc = mlgrade("check", "ml-hw6", "--course", str(ROOT), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "Graded hw6.ipynb" in proc.stdout


def test_outside_any_course_a_command_says_how_to_name_one(tmp_path):
    proc = mlgrade("check", "ml-hw6", cwd=tmp_path)
    assert proc.returncode == 2
    assert " ".join(proc.stdout.split()).startswith(
        f"mlgrade: no mlgrade course here: no mlgrade-course.toml in {tmp_path} or above it. Give one with --course DIR")


def test_list_names_every_assignment():
    proc = mlgrade("list")
    assert proc.returncode == 0
    assert "ml-hw6" in proc.stdout and "cs446-hw2" in proc.stdout


def test_unknown_assignment_is_a_clear_error():
    proc = mlgrade("run", "no-such-hw", ".")
    assert proc.returncode == 2
    assert "unknown assignment 'no-such-hw'" in proc.stdout
