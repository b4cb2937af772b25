"""Nothing a student controls reaches an instructor's terminal raw: the one filter
(mlgrade.terminal.printable) where the console renders and where pytest echoes under
`mlgrade run -v`, checked on the raw output of `run -v`, `check`, `grade` and `validate`."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from rich.table import Table

from mlgrade.terminal import PrintableConsole, PrintableStream, printable
from test_hostile import HOSTILE, HOSTILE_GRADERS, WRONG_STUBS

REPO = Path(__file__).resolve().parents[1]
ESCAPES = "\x1b[2J\x1b]0;pwned-title\x07\x1b]52;c;cHduZWQ=\x07\x9b31m\u202e\r\x08\x07"


def controls(text: str) -> list[str]:
    """Every control or format character of ``text`` but newline and tab (ESC, C1, bidi, ...)."""
    return sorted({repr(c) for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t"})


def test_printable_keeps_the_text_and_drops_every_control():
    assert printable("a" + ESCAPES + "b\n\tc") == "ab\n\tc"
    assert printable("unterminated \x1b]52;c;cHduZWQ= title") == "unterminated "  # an OSC runs to the end


def test_a_sequence_split_across_writes_loses_its_controls_in_each():
    raw = io.StringIO()
    stream = PrintableStream(raw)
    for piece in ("before \x1b", "]52;c;cHdu", "ZWQ=\x07 after \x9b", "31m", "\u202eend\n"):
        stream.write(piece)
    assert controls(raw.getvalue()) == [] and raw.getvalue().startswith("before ") and raw.getvalue().endswith("end\n")


def test_the_console_filters_what_it_prints_and_keeps_its_own_styles():
    raw = io.StringIO()
    console = PrintableConsole(file=raw, force_terminal=True, color_system="standard", width=200)
    table = Table(title="t")
    table.add_column("test")
    table.add_row("name" + ESCAPES)
    console.print(table)
    console.print("[red]styled[/] student:" + ESCAPES, markup=True)
    console.print("plain student:" + ESCAPES, markup=False)
    out = raw.getvalue()
    assert "\x1b[31mstyled" in out  # rich's own colour
    for leaked in ("\x1b[2J", "\x1b]", "\x9b", "\u202e", "\x08", "pwned-title", "cHduZWQ"):
        assert leaked not in out
    assert "student:" in out and "name" in out


# --- the commands, end to end ------------------------------------------------------------------------

def _root(folder: Path, reference_extra: str = "") -> Path:
    """A course of ml-hw6 alone with the hostile corpus's compact graders (fast), the real
    reference (plus ``reference_extra``), contract, helpers and template, and no mutants."""
    folder.mkdir(parents=True)
    shutil.copy(REPO / "mlgrade-course.toml", folder / "mlgrade-course.toml")
    for part in ("assignments/ml-hw6", "reference/ml-hw6", "student_template/ml-hw6", "lib"):
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "graders" / "ml-hw6").mkdir(parents=True)
    (folder / "graders" / "ml-hw6" / "test_hostile_graders.py").write_text(HOSTILE_GRADERS)
    reference = folder / "reference" / "ml-hw6" / "hw6.py"
    reference.write_text(reference.read_text() + reference_extra)
    (folder / "tests" / "mutants" / "ml-hw6").mkdir(parents=True)
    return folder


def _stage(case: str, folder: Path) -> Path:
    """tests/hostile/<case> as tests/test_hostile.py stages it."""
    shutil.copytree(HOSTILE / case, folder)
    if (folder / "hw6.py").is_file():
        (folder / "hw6.py").write_text(WRONG_STUBS.read_text() + "\n\n" + (folder / "hw6.py").read_text())
    return folder


def _mlgrade(root: Path, *args, cwd: Path) -> str:
    env = {**os.environ, "MLGRADE_COURSE": str(root), "COLUMNS": "200"}
    run = subprocess.run([sys.executable, "-m", "mlgrade.cli", *args], capture_output=True, cwd=cwd, env=env,
                         timeout=900)
    return run.stdout.decode("utf-8", "replace") + run.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("case, shown", [
    ("escape_sequences", ["raised-in-call", "raised-in-viterbi", "printed-in-call"]),
    ("computed_refused_call", ["called while your code ran"]),
    ("annotation_call", ["does not define `batchnorm_forward`"]),
])
def test_run_verbose_prints_the_students_text_without_its_controls(tmp_path, case, shown):
    root = _root(tmp_path / "root")
    out = _mlgrade(root, "run", "ml-hw6", str(_stage(case, tmp_path / case)), "-v", "--results",
                   str(tmp_path / "results.json"), cwd=tmp_path)
    assert "Score: 0 / 23" in out, out  # the public checks and the compact graders, none passed
    for text in shown:
        assert text in " ".join(out.split()), (text, out)
    assert controls(out) == [], out


def test_check_and_grade_print_the_students_text_without_its_controls(tmp_path):
    root = _root(tmp_path / "root")
    submission = _stage("escape_sequences", tmp_path / "class" / "mallory")
    checked = _mlgrade(root, "check", "ml-hw6", cwd=submission)
    assert "raised-in-call" in checked and controls(checked) == [], checked
    graded = _mlgrade(root, "grade", "ml-hw6", str(tmp_path / "class"), "-j", "1", "-o", str(tmp_path / "out"),
                      cwd=tmp_path)
    assert "graded 1, skipped 0 unchanged, 0 failed" in graded and controls(graded) == [], graded


def test_validate_prints_a_failing_references_messages_without_their_controls(tmp_path):
    # the reference's kl_loss raises with escapes: validate shows why the reference is not 100%
    root = _root(tmp_path / "root", f"\n\ndef kl_loss(mu, log_sigma):\n    raise ValueError({'raised-in-call' + ESCAPES!r})\n")
    out = _mlgrade(root, "validate", "ml-hw6", cwd=tmp_path)
    assert "validation failed" in out and "raised-in-call" in " ".join(out.split()), out
    assert controls(out) == [], out
